"""An agent on the real runtime whose handler takes a while, to test graceful shutdown.

Usage: python -m tests.support.slow_agent EXCHANGE EFFECT_FILE (RABBITMQ_URL from env).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agents.runtime import Agent
from infra.bus import Delivery
from infra.logging import configure_logging
from infra.settings import Settings
from protocol import Candle, Message
from tests.support.bus import isolated_topology


class SlowAgent(Agent):
    name = "slow_test"

    def __init__(self, settings: Settings, exchange: str, effect_file: Path) -> None:
        super().__init__(settings, isolated_topology(exchange))
        self.effect_file = effect_file

    async def setup(self) -> None:
        await self.bus.consume(self.bus.topology.queues[0].name, self.handle, (Candle,))

    async def handle(self, message: Message, delivery: Delivery) -> None:
        with self.effect_file.open("a") as out:
            out.write(f"start {message.message_id}\n")
        self.log.info("handling candle", message_id=str(message.message_id))
        await asyncio.sleep(1.5)
        with self.effect_file.open("a") as out:
            out.write(f"done {message.message_id}\n")


if __name__ == "__main__":
    settings = Settings(HEARTBEAT_INTERVAL=0.3)
    configure_logging(SlowAgent.name)
    asyncio.run(SlowAgent(settings, sys.argv[1], Path(sys.argv[2])).run())

"""A consumer process that records an effect in Postgres exactly once per message, and can die
(os._exit, no cleanup, no ack) right before or right after committing.

Usage: python -m tests.support.crash_consumer EXCHANGE MODE
MODE: crash-before-commit | crash-after-commit | normal. RABBITMQ_URL and TEST_DB_URL from env.
"""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import text

from infra.bus import Bus, Delivery
from infra.db import create_engine, processed_once, session_factory
from protocol import Candle, Message
from tests.support.bus import isolated_topology

CRASH_EXIT = 99


async def main(exchange: str, mode: str) -> None:
    topology = isolated_topology(exchange)
    engine = create_engine(os.environ["TEST_DB_URL"])
    sessions = session_factory(engine)
    bus = Bus(os.environ["RABBITMQ_URL"], topology, connection_name=f"crash-consumer-{mode}")
    await bus.connect()
    handled = asyncio.Event()

    async def handler(message: Message, delivery: Delivery) -> None:
        async with processed_once(sessions, "crash-test", message.message_id) as (session, first):
            if first:
                await session.execute(text("INSERT INTO effects (message_id) VALUES (:id)"), {"id": message.message_id})
            if mode == "crash-before-commit":
                os._exit(CRASH_EXIT)
        if mode == "crash-after-commit":
            os._exit(CRASH_EXIT)  # committed, not acked: the broker must redeliver
        handled.set()

    await bus.consume(topology.queues[0].name, handler, (Candle,))
    await asyncio.wait_for(handled.wait(), timeout=30)
    await bus.close()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

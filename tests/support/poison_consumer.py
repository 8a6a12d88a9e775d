"""A concurrent consumer process that dies (os._exit: no cleanup, no ack) whenever it handles the
poison candle, and records the other candles it handled in a file.

Usage: python -m tests.support.poison_consumer EXCHANGE classic|quorum POISON_INDEX EFFECTS_FILE JOURNAL_FILE EXPECTED
RABBITMQ_URL from env. It exits 0 once EXPECTED messages were acked or dead-lettered (or after
30 s), and CRASH_EXIT when the poison killed it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from infra.bus import Bus, Delivery, RetryPolicy
from protocol import Candle, Message
from tests.support.bus import isolated_topology
from tests.support.crash_consumer import CRASH_EXIT

MAX_CRASHES = 2


async def main(exchange: str, quorum: bool, poison: int, effects: Path, journal: Path, expected: int) -> None:
    topology = isolated_topology(exchange)
    bus = Bus(
        os.environ["RABBITMQ_URL"],
        topology,
        connection_name="poison-consumer",
        quorum=quorum,
        retry_policy=RetryPolicy(max_crashes=MAX_CRASHES),
        crash_journal=journal,
    )
    await bus.connect()
    done = 0

    async def handler(message: Message, delivery: Delivery) -> None:
        nonlocal done
        assert isinstance(message, Candle)
        index = int(message.open - 47000)
        if index == poison:
            await asyncio.sleep(0.1)  # the others are in handling by now, unless run alone
            os._exit(CRASH_EXIT)
        await asyncio.sleep(0.4)
        with effects.open("a") as out:
            out.write(f"{index}\n")
        done += 1

    await bus.consume(topology.queues[0].name, handler, (Candle,), sequential=False, prefetch=10)
    deadline = asyncio.get_running_loop().time() + 30
    while done + bus.stats.dead_lettered < expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await bus.close()


if __name__ == "__main__":
    exchange, kind, poison, effects, journal, expected = sys.argv[1:7]
    asyncio.run(main(exchange, kind == "quorum", int(poison), Path(effects), Path(journal), int(expected)))

"""The attempt count survives the consumer's death (issue 14): a message that kills its consumer
process every time is dead-lettered after BUS_MAX_CRASHES deaths, on a classic queue (no broker
delivery limit) as on a quorum queue (long before its x-delivery-limit of 20), and the messages
that were in handling beside it when it struck are handled, not dead-lettered with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from infra.bus import Bus, Topology
from infra.bus import headers as h
from protocol import Candle, decode
from tests.support.bus import cleanup, declare, drain, isolated_topology, make_candle, queue_depth
from tests.support.crash_consumer import CRASH_EXIT
from tests.support.poison_consumer import MAX_CRASHES
from tests.support.processes import spawn

pytestmark = pytest.mark.integration

POISON = 0
MESSAGES = 4


async def run_poison_consumer(topology: Topology, quorum: bool, rabbitmq_url: str, effects: Path, journal: Path) -> int:
    process = spawn(
        "tests.support.poison_consumer",
        topology.exchange, "quorum" if quorum else "classic", str(POISON), str(effects), str(journal), str(MESSAGES),
        env={"RABBITMQ_URL": rabbitmq_url},
    )
    _, stderr = await asyncio.to_thread(process.communicate, None, 60)
    if process.returncode not in (0, CRASH_EXIT):
        pytest.fail(f"consumer exited {process.returncode}: {stderr[-3000:]}")
    return int(process.returncode)


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
async def test_a_message_that_keeps_killing_its_consumer_is_dead_lettered_and_its_neighbours_are_handled(
    quorum: bool, rabbitmq_url: str, tmp_path: Path
) -> None:
    topology = isolated_topology()
    await declare(rabbitmq_url, topology, quorum=quorum)
    try:
        async with Bus(rabbitmq_url, topology, connection_name="test-publisher", quorum=quorum) as bus:
            for index in range(MESSAGES):
                await bus.publish(make_candle(index))
        effects, journal = tmp_path / "effects.txt", tmp_path / "journal.sqlite3"
        codes = []
        for _ in range(MAX_CRASHES + 3):  # more runs than the bound needs: a loop shows up here
            codes.append(await run_poison_consumer(topology, quorum, rabbitmq_url, effects, journal))
            if codes[-1] == 0:
                break
        assert codes == [CRASH_EXIT] * MAX_CRASHES + [0]

        dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=2, timeout=3)
        assert len(dead) == 1
        assert decode(dead[0].body, Candle).open == make_candle(POISON).open
        assert dead[0].headers[h.ERROR_KIND] == h.KIND_CRASH
        assert str(dead[0].headers[h.ERROR]).startswith(f"killed the consumer {MAX_CRASHES} times")
        assert dead[0].headers[h.ORIGINAL_QUEUE] == topology.queues[0].name
        # The neighbours were in handling at the first death too; they were handled, each once.
        assert sorted(int(line) for line in effects.read_text().split()) == [1, 2, 3]
        assert await queue_depth(rabbitmq_url, topology.queues[0].name) == 0
    finally:
        await cleanup(rabbitmq_url, topology)

"""The delivery promise under failure, on the real broker: a consumer that dies before it acks,
an agent stopped mid-message, and a broker restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from infra.bus import Bus, Delivery, PublishFailed, Topology
from infra.db import create_engine, upgrade_head
from protocol import Candle, Heartbeat, HealthState, Message, decode
from tests.support.bus import cleanup, declare, drain, isolated_topology, make_candle, queue_depth, wait_until
from tests.support.crash_consumer import CRASH_EXIT
from tests.support.processes import spawn
from tests.support.services import unavailable

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = isolated_topology()
    await declare(rabbitmq_url, topo)
    yield topo
    await cleanup(rabbitmq_url, topo)


async def publish(rabbitmq_url: str, topology: Topology, *messages: Message) -> None:
    async with Bus(rabbitmq_url, topology, connection_name="test-publisher") as bus:
        for message in messages:
            await bus.publish(message)


async def _depth_is(url: str, queue: str, expected: int) -> bool:
    return await queue_depth(url, queue) == expected


async def count_effects(db_url: str) -> int:
    engine = create_engine(db_url)
    async with engine.connect() as connection:
        value = (await connection.execute(text("SELECT count(*) FROM effects"))).scalar_one()
    await engine.dispose()
    return int(value)


async def run_consumer(exchange: str, mode: str, rabbitmq_url: str, db_url: str) -> int:
    process = spawn("tests.support.crash_consumer", exchange, mode, env={"RABBITMQ_URL": rabbitmq_url, "TEST_DB_URL": db_url})
    code = await asyncio.to_thread(process.wait, 60)
    if code not in (0, CRASH_EXIT):
        pytest.fail(f"consumer exited {code}: {process.stderr.read() if process.stderr else ''}")
    return code


@pytest.mark.parametrize("crash", ["crash-after-commit", "crash-before-commit"])
async def test_consumer_dying_before_ack_gets_redelivery_and_effect_happens_once(
    crash: str, rabbitmq_url: str, postgres_url: str, topology: Topology
) -> None:
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        # No unique key on purpose: a second effect would show up as a second row.
        await connection.execute(text("CREATE TABLE effects (message_id uuid NOT NULL)"))
    await engine.dispose()
    await publish(rabbitmq_url, topology, make_candle(1))

    assert await run_consumer(topology.exchange, crash, rabbitmq_url, postgres_url) == CRASH_EXIT
    # The dead process never acked: the broker holds the message for the next consumer.
    assert await wait_until(lambda: _depth_is(rabbitmq_url, topology.queues[0].name, 1))
    assert await count_effects(postgres_url) == (1 if crash == "crash-after-commit" else 0)

    assert await run_consumer(topology.exchange, "normal", rabbitmq_url, postgres_url) == 0
    assert await count_effects(postgres_url) == 1
    assert await queue_depth(rabbitmq_url, topology.queues[0].name) == 0
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0


async def test_sigterm_finishes_in_flight_message_then_exits(rabbitmq_url: str, topology: Topology, tmp_path: Path) -> None:
    effect_file = tmp_path / "effects.txt"
    process = spawn("tests.support.slow_agent", topology.exchange, str(effect_file), env={"RABBITMQ_URL": rabbitmq_url})
    candle = make_candle(2)
    await publish(rabbitmq_url, topology, candle)
    assert await wait_until(lambda: effect_file.exists() and "start" in effect_file.read_text(), timeout=20)
    process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, 30)
    stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr
    assert effect_file.read_text().splitlines() == [f"start {candle.message_id}", f"done {candle.message_id}"]
    assert await queue_depth(rabbitmq_url, topology.queues[0].name) == 0  # acked, not redelivered

    # Every log line is JSON with the agent name and a correlation id key; the handler's line
    # carries the candle's correlation id.
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and all(line["agent"] == "slow_test" and "correlation_id" in line for line in lines)
    handling = [line for line in lines if line["event"] == "handling candle"]
    assert handling[0]["correlation_id"] == str(candle.correlation_id)

    # Heartbeats were published, the last one saying the agent was stopping.
    beats = [decode(m.body, Heartbeat) for m in await drain(rabbitmq_url, topology.queues[1].name, expect=100, timeout=2)]
    assert beats and all(b.agent == "slow_test" for b in beats)
    assert beats[-1].health is HealthState.STOPPING
    assert beats[-1].consumed == 1 and beats[-1].dead_lettered == 0


def rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120, capture_output=True)


@pytest.mark.broker_restart
async def test_broker_restart_loses_no_confirmed_message(rabbitmq_url: str, topology: Topology) -> None:
    if shutil.which("rabbitmqctl") is None or urlsplit(rabbitmq_url).hostname not in {"127.0.0.1", "localhost"}:
        unavailable("the broker restart test needs a local RabbitMQ node and rabbitmqctl")
    received: set[str] = set()

    async def handler(message: Message, delivery: Delivery) -> None:
        received.add(str(message.message_id))

    consumer_bus = Bus(rabbitmq_url, topology, connection_name="restart-consumer", reconnect_interval=0.5)
    publisher_bus = Bus(rabbitmq_url, topology, connection_name="restart-publisher", publish_timeout=2, reconnect_interval=0.5)
    await consumer_bus.connect()
    await publisher_bus.connect()
    await consumer_bus.consume(topology.queues[0].name, handler, (Candle,))
    confirmed: list[str] = []
    failures = 0
    restarted = False
    try:
        for index in range(40):
            candle = make_candle(index)
            if index == 15:
                await asyncio.to_thread(rabbitmqctl, "stop_app")
                restarted = True
            if index == 20:
                await asyncio.to_thread(rabbitmqctl, "start_app")
            while True:  # the publisher's duty: retry until confirmed (duplicates are harmless)
                try:
                    await publisher_bus.publish(candle)
                    confirmed.append(str(candle.message_id))
                    break
                except PublishFailed:
                    failures += 1
                    if index >= 20:
                        await asyncio.sleep(0.5)
                    else:
                        break  # while the broker is down, move on: these were never confirmed
        assert await wait_until(lambda: set(confirmed) <= received, timeout=60), set(confirmed) - received
    finally:
        if restarted:
            await asyncio.to_thread(rabbitmqctl, "start_app")
        await publisher_bus.close()
        await consumer_bus.close()
    assert failures > 0, "the broker was down: some publishes must have failed"
    assert len(confirmed) >= 25

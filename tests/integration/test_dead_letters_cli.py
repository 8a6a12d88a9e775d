"""`tradebus dead-letters` on the real broker: list reads without consuming; requeue moves the
messages back with their attempts reset, so a message dead-lettered after BUS_MAX_ATTEMPTS gets
all its attempts again once the cause is fixed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from infra.bus import Bus, Delivery, RetryPolicy, Topology, system_topology
from infra.bus import headers as h
from protocol import Candle, Message
from tests.support.bus import cleanup, declare, make_candle, queue_depth, take_one, wait_until
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

TOPIC = "market.candle.binance.BTC-USDT.15m"


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    await declare(rabbitmq_url, topo)
    yield topo
    await cleanup(rabbitmq_url, topo)


async def tradebus(rabbitmq_url: str, *args: str) -> str:
    """Run the real CLI as an operator would; its stdout (fails the test on a non-zero exit)."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agents.cli", "dead-letters", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"RABBITMQ_URL": rabbitmq_url, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_requeued_dead_letters_get_their_attempts_again(rabbitmq_url: str, topology: Topology) -> None:
    ex = topology.exchange
    queue = f"{ex}.technical_analysis.candles"
    fixed = False
    tries: dict[int, list[Delivery]] = {}

    async def handler(message: Message, delivery: Delivery) -> None:
        assert isinstance(message, Candle)
        mine = tries.setdefault(int(message.open - 47000), [])
        mine.append(delivery)
        # Before the fix: always broken. After: one more failure each, which must not be fatal.
        if not fixed or len([d for d in mine if d.headers.get(h.REQUEUES)]) == 1:
            raise ValueError("indicator window misconfigured")

    policy = RetryPolicy(backoff_initial=0.05, backoff_cap=0.1)
    async with Bus(rabbitmq_url, topology, connection_name="test-dlq", max_attempts=2, retry_policy=policy) as bus:
        await bus.consume(queue, handler, (Candle,))
        for index in range(3):
            await bus.publish(make_candle(index))
        assert await wait_until(lambda: bus.stats.dead_lettered == 3, timeout=20)

        listing = await tradebus(rabbitmq_url, "list", "--exchange", ex, "--queue", "technical_analysis.candles")
        assert f"{queue}.dlq: 3 message(s)" in listing
        assert "[handler] attempts=2" in listing and "ValueError: indicator window misconfigured" in listing
        assert await queue_depth(rabbitmq_url, f"{queue}.dlq") == 3  # listing consumed nothing

        fixed = True
        moved = await tradebus(rabbitmq_url, "requeue", queue, "--limit", "2", "--yes", "--exchange", topology.exchange)
        assert "moved 2 message(s)" in moved
        assert await wait_until(lambda: sum(len(t) for t in tries.values()) == 6 + 4, timeout=20), tries
        assert await queue_depth(rabbitmq_url, f"{queue}.dlq") == 1
        moved = await tradebus(rabbitmq_url, "requeue", "technical_analysis.candles.dlq", "-y", "--exchange", ex)
        assert "moved 1 message(s)" in moved
        assert await wait_until(lambda: sum(len(t) for t in tries.values()) == 12, timeout=20), tries
        await bus.stop_consuming()

    for index, deliveries in tries.items():
        before, after = deliveries[:2], deliveries[2:]
        assert [d.attempt for d in before] == [1, 2] and [d.attempt for d in after] == [1, 2], index
        succeeded = after[-1]
        assert succeeded.headers[h.REQUEUES] == 1
        assert succeeded.headers[h.PREVIOUS_ERROR] == "ValueError: indicator window misconfigured"
        assert h.FAILURES not in succeeded.headers and h.ERROR_KIND not in succeeded.headers
        assert succeeded.routing_key == TOPIC
    assert await queue_depth(rabbitmq_url, queue) == 0
    assert await queue_depth(rabbitmq_url, f"{queue}.dlq") == 0


async def test_a_message_the_broker_dead_lettered_goes_back_with_its_original_routing_key(
    rabbitmq_url: str, topology: Topology
) -> None:
    queue = f"{topology.exchange}.technical_analysis.candles"
    async with Bus(rabbitmq_url, topology, connection_name="test-dlq-broker") as bus:
        await bus.publish(make_candle(9))
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        work = await channel.declare_queue(queue, passive=True)
        message = await take_one(work)
        await message.reject(requeue=False)  # the broker dead-letters it, with x-death
        assert await wait_until(lambda: queue_depth(rabbitmq_url, f"{queue}.dlq"), timeout=5)
        listing = await tradebus(rabbitmq_url, "list", "--exchange", topology.exchange, "-q", queue)
        assert "[broker:rejected]" in listing and f"key={TOPIC}" in listing

        moved = await tradebus(rabbitmq_url, "requeue", queue, "-y", "--exchange", topology.exchange)
        assert "moved 1 message(s)" in moved
        back = await take_one(work)
        await back.ack()
    headers = back.headers or {}
    assert headers[h.ROUTING_KEY] == TOPIC
    assert "x-death" not in headers and "x-first-death-reason" not in headers

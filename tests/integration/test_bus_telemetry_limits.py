"""The heartbeat queue's limits drop old beats; they never make dead letters (a run longer than
the limit used to end with a FAILing reality check because nobody read the beats)."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from infra.bus import system_topology
from protocol import topics
from tests.support.bus import cleanup, declare, queue_depth

pytestmark = pytest.mark.integration


async def test_heartbeats_beyond_the_queue_limit_are_dropped_not_dead_lettered(rabbitmq_url: str) -> None:
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    spec = next(q for q in topology.queues if q.name.endswith(".monitor.heartbeats"))
    assert spec.max_length is not None
    await declare(rabbitmq_url, topology)
    try:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.exchange)
            for i in range(spec.max_length + 25):
                await exchange.publish(aio_pika.Message(f'{{"beat": {i}}}'.encode()), topics.heartbeat("strategy"))
        assert await queue_depth(rabbitmq_url, spec.name) == spec.max_length
        assert await queue_depth(rabbitmq_url, spec.dead_letter_queue) == 0
    finally:
        await cleanup(rabbitmq_url, topology)

"""Partition queues on the real broker (decision 0025): each symbol's messages land in exactly
one partition queue, and a partition has one active consumer at a time, with a standby taking
over — in order, nothing lost — when the active one's connection goes."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from infra.bus import Bus, Delivery, system_topology
from protocol import Candle, Message, topics
from tests.support.bus import cleanup, drain, make_candle, queue_depth, wait_until

pytestmark = pytest.mark.integration

FIRST = make_candle(0).open_time
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT")


async def test_each_symbol_lands_in_its_partition_queue_and_only_there(rabbitmq_url: str) -> None:
    topology = system_topology(f"tbpart_{uuid.uuid4().hex[:10]}", 4)
    group = f"{topology.exchange}.technical_analysis.candles"
    try:
        async with Bus(rabbitmq_url, topology, connection_name="test-partitions") as bus:
            for symbol in SYMBOLS:
                for index in range(3):
                    await bus.publish(make_candle(index, symbol=symbol))
            expected = Counter(topics.partition_of(s, 4) for s in SYMBOLS for _ in range(3))
            assert len(expected) > 1, "the symbols must spread over several partitions"
            for k, spec in enumerate(topology.group(group)):
                assert spec.name == f"{group}.p{k}"
                taken = await drain(rabbitmq_url, spec.name, expect=expected[k], timeout=5)
                symbols = {Candle.model_validate_json(m.body).symbol for m in taken}
                assert len(taken) == expected[k]
                assert all(topics.partition_of(s, 4) == k for s in symbols), (k, symbols)
                assert await queue_depth(rabbitmq_url, spec.name) == 0
    finally:
        await cleanup(rabbitmq_url, topology)


async def test_a_standby_takes_a_partition_over_in_order_when_the_active_consumer_goes(rabbitmq_url: str) -> None:
    topology = system_topology(f"tbpart_{uuid.uuid4().hex[:10]}", 2)
    group = f"{topology.exchange}.technical_analysis.candles"
    symbol = next(s for s in SYMBOLS if topics.partition_of(s, 2) == 0)
    handled: dict[str, list[int]] = {"a": [], "b": []}
    stuck = asyncio.Event()

    def handler(name: str, hold_at: int | None):  # type: ignore[no-untyped-def]
        async def handle(message: Message, delivery: Delivery) -> None:
            assert isinstance(message, Candle)
            index = int((message.open_time - FIRST).total_seconds() // 900)
            if index == hold_at:
                stuck.set()
                await asyncio.Event().wait()  # "dies" holding this message unacked
            handled[name].append(index)
        return handle

    publisher = Bus(rabbitmq_url, topology, connection_name="test-partitions-publisher")
    active = Bus(rabbitmq_url, topology, connection_name="test-partitions-a")
    standby = Bus(rabbitmq_url, topology, connection_name="test-partitions-b")
    try:
        await publisher.connect()
        await active.connect()
        await active.consume_group(group, handler("a", 5), (Candle,))
        await standby.connect()
        await standby.consume_group(group, handler("b", None), (Candle,))
        for index in range(10):
            await publisher.publish(make_candle(index, symbol=symbol))
        assert await wait_until(stuck.is_set, timeout=10)
        assert handled["b"] == [], "the standby consumed while the active consumer was there"
        # The active instance is gone (its connection, as when its process dies).
        await active.connection.close()
        assert await wait_until(lambda: len(handled["b"]) == 5, timeout=15), handled
        assert handled["a"] == [0, 1, 2, 3, 4]
        assert handled["b"] == [5, 6, 7, 8, 9]
    finally:
        for bus in (standby, publisher):
            await bus.close()
        await cleanup(rabbitmq_url, topology)


async def test_instances_started_together_split_the_partitions_and_stand_by_for_each_other(rabbitmq_url: str) -> None:
    """Instance i of n is first on partitions k with k mod n = i - 1 whatever the start order,
    so two instances share the work; when one goes, the other takes its share over."""
    topology = system_topology(f"tbpart_{uuid.uuid4().hex[:10]}", 2)
    group = f"{topology.exchange}.technical_analysis.candles"
    on_p0 = next(s for s in SYMBOLS if topics.partition_of(s, 2) == 0)
    on_p1 = next(s for s in SYMBOLS if topics.partition_of(s, 2) == 1)
    handled: dict[int, list[str]] = {1: [], 2: []}

    def handler(instance: int):  # type: ignore[no-untyped-def]
        async def handle(message: Message, delivery: Delivery) -> None:
            assert isinstance(message, Candle)
            handled[instance].append(message.symbol)
        return handle

    def instance_bus(instance: int) -> Bus:
        return Bus(rabbitmq_url, topology, connection_name=f"test-partitions-{instance}", instance=instance,
                   instances=2, standby_delay=0.5)

    publisher = Bus(rabbitmq_url, topology, connection_name="test-partitions-publisher")
    first, second = instance_bus(1), instance_bus(2)
    try:
        await publisher.connect()
        await second.connect()  # the second instance starts first: it still takes only its share
        await second.consume_group(group, handler(2), (Candle,))
        await first.connect()
        await first.consume_group(group, handler(1), (Candle,))
        await asyncio.sleep(1.5)  # both have subscribed to the other's share, as standbys
        for index in range(3):
            await publisher.publish(make_candle(index, symbol=on_p0))
            await publisher.publish(make_candle(index, symbol=on_p1))
        assert await wait_until(lambda: len(handled[1]) + len(handled[2]) == 6, timeout=15), handled
        assert handled == {1: [on_p0] * 3, 2: [on_p1] * 3}

        await first.connection.close()  # instance 1 is gone: instance 2 takes partition 0 over
        await publisher.publish(make_candle(3, symbol=on_p0))
        assert await wait_until(lambda: handled[2].count(on_p0) == 1, timeout=15), handled
    finally:
        for bus in (second, publisher):
            await bus.close()
        await cleanup(rabbitmq_url, topology)

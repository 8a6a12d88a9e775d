"""The bus on the real RabbitMQ broker: confirms, mandatory routing, dead-lettering, retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import pytest

from infra.bus import Bus, Delivery, Topology, UnroutableMessage, declare_topology
from infra.bus import headers as h
from protocol import Candle, Message, decode
from tests.support.bus import cleanup, drain, isolated_topology, make_candle, queue_depth, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = isolated_topology()
    yield topo
    await cleanup(rabbitmq_url, topo)


@pytest.fixture
async def bus(rabbitmq_url: str, topology: Topology) -> AsyncIterator[Bus]:
    bus = Bus(rabbitmq_url, topology, connection_name="test-bus", publish_timeout=5, max_attempts=3)
    await bus.connect()
    yield bus
    await bus.close()


def work_queue(topology: Topology) -> str:
    return topology.queues[0].name


async def test_confirmed_round_trip(bus: Bus, topology: Topology, rabbitmq_url: str) -> None:
    received: list[Message] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        received.append(message)
        assert delivery.routing_key == "market.candle.binance.BTC-USDT.15m"

    await bus.consume(work_queue(topology), handler, (Candle,))
    sent = [make_candle(i) for i in range(5)]
    for candle in sent:
        await bus.publish(candle)
    assert await wait_until(lambda: len(received) == 5)
    assert received == sent
    await bus.stop_consuming()
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0
    assert bus.stats.published == 5 and bus.stats.consumed == 5


async def test_unroutable_publish_raises(bus: Bus) -> None:
    with pytest.raises(UnroutableMessage, match="no queue bound"):
        await bus.publish(make_candle(), routing_key="nobody.listens.here")


async def test_invalid_payload_is_dead_lettered_with_reason_and_consumer_goes_on(
    bus: Bus, topology: Topology, rabbitmq_url: str
) -> None:
    received: list[Message] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        received.append(message)

    await bus.consume(work_queue(topology), handler, (Candle,))
    nonsense = make_candle().model_dump(mode="json", by_alias=True) | {"high": "1", "low": "2"}
    raw = [b"not json at all", b'{"schema": "market.candle/1"}', json.dumps(nonsense).encode()]
    for body in raw:
        await bus.publisher.publish(aio_pika.Message(body), routing_key="market.candle.binance.BTC-USDT.15m")
    good = make_candle(7)
    await bus.publish(good)

    assert await wait_until(lambda: received == [good])
    dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=3)
    assert [m.body for m in dead] == raw
    for message in dead:
        assert message.headers[h.ERROR_KIND] == h.KIND_VALIDATION
        assert str(message.headers[h.ERROR]).startswith("validation: ")
        assert message.headers[h.ORIGINAL_QUEUE] == work_queue(topology)
    assert "high" in str(dead[2].headers[h.ERROR])
    assert bus.stats.dead_lettered == 3


async def test_handler_error_retried_then_dead_lettered(bus: Bus, topology: Topology, rabbitmq_url: str) -> None:
    attempts: list[int] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise RuntimeError("ledger unavailable")

    await bus.consume(work_queue(topology), handler, (Candle,))
    candle = make_candle(3)
    await bus.publish(candle)
    dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=1, timeout=15)
    assert attempts == [1, 2, 3]
    assert len(dead) == 1
    assert decode(dead[0].body, Candle) == candle
    assert dead[0].headers[h.ERROR_KIND] == h.KIND_HANDLER
    assert dead[0].headers[h.ERROR] == "RuntimeError: ledger unavailable"
    assert dead[0].headers[h.ATTEMPT] == 3
    assert dead[0].headers[h.FAILURES] == 3
    # The original routing key survives the retries through the default exchange.
    assert dead[0].headers[h.ROUTING_KEY] == "market.candle.binance.BTC-USDT.15m"
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0


async def test_transient_handler_error_is_retried_and_succeeds(bus: Bus, topology: Topology, rabbitmq_url: str) -> None:
    calls: list[int] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        calls.append(delivery.attempt)
        if delivery.attempt == 1:
            raise ConnectionError("transient")

    await bus.consume(work_queue(topology), handler, (Candle,))
    await bus.publish(make_candle())
    assert await wait_until(lambda: calls == [1, 2])
    await bus.stop_consuming()
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0


async def test_a_retried_message_keeps_its_place_in_a_sequential_queue(
    bus: Bus, topology: Topology, rabbitmq_url: str
) -> None:
    """A transient failure must not let the messages behind it overtake it (a BUY retried
    behind its own SELL would turn the SELL into "no position")."""
    handled: list[tuple[int, int]] = []  # (candle index, attempt)
    sent = [make_candle(i) for i in range(6)]

    async def handler(message: Message, delivery: Delivery) -> None:
        index = sent.index(message)  # type: ignore[arg-type]
        handled.append((index, delivery.attempt))
        if index == 2 and delivery.attempt < 3:
            raise ConnectionError("could not serialize access due to concurrent update")

    for candle in sent:  # all queued before consuming: the consumer holds the later ones prefetched
        await bus.publish(candle)
    await bus.consume(work_queue(topology), handler, (Candle,))
    assert await wait_until(lambda: len(handled) == 8)
    assert handled == [(0, 1), (1, 1), (2, 1), (2, 2), (2, 3), (3, 1), (4, 1), (5, 1)]
    await bus.stop_consuming()
    assert bus.stats.retried == 2
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0


async def test_a_concurrent_consumer_retries_a_permanent_error_by_requeueing_without_blocking_the_queue(
    bus: Bus, topology: Topology
) -> None:
    handled: list[tuple[int, int]] = []
    sent = [make_candle(i) for i in range(4)]

    async def handler(message: Message, delivery: Delivery) -> None:
        index = sent.index(message)  # type: ignore[arg-type]
        handled.append((index, delivery.attempt))
        if index == 0 and delivery.attempt == 1:
            raise RuntimeError("a bug that the next attempt does not hit")

    for candle in sent:
        await bus.publish(candle)
    await bus.consume(work_queue(topology), handler, (Candle,), sequential=False)
    assert await wait_until(lambda: len(handled) == 5)
    # The retry went to the back of the queue: the others did not wait for it.
    assert handled[-1] == (0, 2) and sorted(handled[:-1]) == [(0, 1), (1, 1), (2, 1), (3, 1)]


async def test_unexpected_message_type_is_dead_lettered(bus: Bus, topology: Topology, rabbitmq_url: str) -> None:
    async def handler(message: Message, delivery: Delivery) -> None:
        raise AssertionError("must not be called")

    from protocol import Heartbeat

    await bus.consume(work_queue(topology), handler, (Heartbeat,))
    await bus.publish(make_candle())
    dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=1)
    assert dead[0].headers[h.ERROR_KIND] == h.KIND_UNEXPECTED_TYPE


async def test_queues_are_quorum_queues(rabbitmq_url: str, topology: Topology) -> None:
    """Redeclaring the same queue as a classic queue must clash with what the bus declared."""
    bus = Bus(rabbitmq_url, topology, connection_name="test-quorum")
    await bus.connect()
    await bus.close()
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await declare_topology(await connection.channel(), topology, quorum=False)


async def test_a_message_under_a_key_its_content_does_not_match_is_dead_lettered(
    bus: Bus, topology: Topology, rabbitmq_url: str
) -> None:
    """Broker permissions judge keys, not bodies: a BTC candle published under the ETH key (as a
    forged signal of another strategy under a user's own key would be) never reaches the handler."""
    from protocol import topics

    handled: list[str] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        handled.append(message.symbol)  # type: ignore[attr-defined]

    await bus.consume(work_queue(topology), handler, (Candle,))
    await bus.publish(make_candle(0, symbol="BTC/USDT"), routing_key=topics.candle("binance", "ETH/USDT", "15m"))
    await bus.publish(make_candle(1, symbol="ETH/USDT"))  # its own key: handled
    dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=1)
    assert dead[0].headers[h.ERROR_KIND] == h.KIND_MISROUTED
    assert "market.candle.binance.ETH-USDT.15m" in dead[0].headers[h.ERROR] and "forged or misrouted" in dead[0].headers[h.ERROR]
    assert await wait_until(lambda: handled == ["ETH/USDT"])

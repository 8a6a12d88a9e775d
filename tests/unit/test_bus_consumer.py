"""QueueConsumer's retry policy without a broker: the consumer is the real one; only the AMQP
delivery and the publisher around it are stand-ins that record what the consumer did to them.
The same behaviour on the real broker: tests/integration/test_bus_transient.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from infra.bus import BusStats, Delivery, QueueConsumer, RetryPolicy
from infra.bus import headers as h
from infra.bus.journal import CrashJournal
from protocol import Message, encode, topic_for
from tests.support.bus import make_candle

FAST = RetryPolicy(backoff_initial=0.001, backoff_cap=0.005)


class RecordedDelivery:
    """An incoming AMQP message: what the consumer reads, and what it did (ack, nack)."""

    def __init__(self, message: Message, *, redelivered: bool = False, headers: dict[str, Any] | None = None) -> None:
        self.body = encode(message)
        self.headers = headers or {}
        self.exchange = "tradebus"  # delivered by the bus exchange, under the message's own key
        self.routing_key = topic_for(message)
        self.redelivered = redelivered
        self.message_id = str(message.message_id)
        self.content_type = "application/json"
        self.correlation_id = self.type = self.app_id = self.timestamp = None
        self.channel_closed = False
        self.settled: list[str] = []

    @property
    def channel(self) -> object:
        if self.channel_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("closed")
        return object()

    async def ack(self) -> None:
        self.channel  # noqa: B018 - acking on a closed channel fails like aio-pika's
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.channel  # noqa: B018
        self.settled.append("nack")


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, aio_pika.Message]] = []

    async def publish(self, message: aio_pika.Message, routing_key: str, exchange: str | None = None) -> None:
        self.published.append((exchange or "", routing_key, message))


def consumer_for(
    handler: Any, *, sequential: bool = True, journal: CrashJournal | None = None
) -> tuple[QueueConsumer, RecordingPublisher]:
    publisher = RecordingPublisher()
    consumer = QueueConsumer(
        "q", handler, (type(make_candle()),), publisher, "dlx", 3, BusStats(), sequential,  # type: ignore[arg-type]
        policy=FAST, journal=journal,
    )
    return consumer, publisher


@pytest.mark.parametrize("sequential", [True, False])
async def test_transient_failures_are_retried_past_max_attempts_in_place_and_reported(sequential: bool) -> None:
    attempts: list[int] = []
    problems: list[str | None] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        problems.append(consumer.problem())
        if len(attempts) <= 20:
            raise ConnectionRefusedError(111, "Connect call failed")

    consumer, publisher = consumer_for(handler, sequential=sequential)
    delivery = RecordedDelivery(make_candle())
    await consumer.on_message(delivery)  # type: ignore[arg-type]
    assert attempts == list(range(1, 22))
    assert delivery.settled == ["ack"] and publisher.published == []  # never re-published, never dead
    assert problems[0] is None and problems[-1] is not None
    assert problems[-1].startswith("retrying q: network unreachable (ConnectionRefusedError) since ")
    assert consumer.problem() is None


@pytest.mark.parametrize("sequential", [True, False])
async def test_permanent_failures_are_bounded_then_dead_lettered(sequential: bool) -> None:
    async def handler(message: Message, delivery: Delivery) -> None:
        raise ValueError("bug")

    consumer, publisher = consumer_for(handler, sequential=sequential)
    delivery = RecordedDelivery(make_candle())
    await consumer.on_message(delivery)  # type: ignore[arg-type]
    exchange, key, copy = publisher.published[-1]
    if sequential:
        assert exchange == "dlx" and copy.headers[h.FAILURES] == 3 and copy.headers[h.ERROR_KIND] == h.KIND_HANDLER
    else:  # one failure, then to the back of the queue with the count in the header
        assert (exchange, key) == ("", "q") and copy.headers[h.FAILURES] == 1
    assert delivery.settled == ["ack"]


async def test_a_republished_copy_continues_its_failure_count() -> None:
    async def handler(message: Message, delivery: Delivery) -> None:
        raise ValueError("bug")

    consumer, publisher = consumer_for(handler, sequential=False)
    copy = RecordedDelivery(make_candle(), headers={h.FAILURES: 2, h.ATTEMPT: 3})
    await consumer.on_message(copy)  # type: ignore[arg-type]
    assert publisher.published[-1][0] == "dlx"


async def test_shutdown_interrupts_the_wait_without_settling() -> None:
    async def handler(message: Message, delivery: Delivery) -> None:
        raise TimeoutError

    consumer, publisher = consumer_for(handler)
    consumer._policy = RetryPolicy(backoff_initial=30, backoff_cap=30)
    delivery = RecordedDelivery(make_candle())
    task = asyncio.create_task(consumer.on_message(delivery))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    consumer.interrupt()
    await asyncio.wait_for(task, 1)
    assert delivery.settled == [] and publisher.published == []
    later = RecordedDelivery(make_candle(1))
    await consumer.on_message(later)  # type: ignore[arg-type]
    assert later.settled == []  # not started once stopping: redelivered to the next consumer


async def test_a_closed_channel_ends_the_retry_and_a_failed_ack_does_not_raise() -> None:
    delivery = RecordedDelivery(make_candle())

    async def closes_then_fails(message: Message, delivery_info: Delivery) -> None:
        delivery.channel_closed = True
        raise ConnectionResetError

    consumer, _ = consumer_for(closes_then_fails)
    await asyncio.wait_for(consumer.on_message(delivery), 1)  # type: ignore[arg-type]
    assert delivery.settled == []

    async def succeeds_as_the_channel_dies(message: Message, delivery_info: Delivery) -> None:
        other.channel_closed = True

    other = RecordedDelivery(make_candle(1))
    consumer, _ = consumer_for(succeeds_as_the_channel_dies)
    await consumer.on_message(other)  # type: ignore[arg-type]
    assert other.settled == []


async def test_a_redelivered_message_that_killed_max_crashes_consumers_is_dead_lettered(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    candle = make_candle()
    for _ in range(3):  # three earlier processes began and never ended
        CrashJournal(path).begin("q", str(candle.message_id))
    handled: list[int] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        handled.append(delivery.attempt)

    consumer, publisher = consumer_for(handler, journal=CrashJournal(path))
    await consumer.on_message(RecordedDelivery(candle, redelivered=True))  # type: ignore[arg-type]
    assert handled == []
    exchange, _, copy = publisher.published[-1]
    assert exchange == "dlx" and copy.headers[h.ERROR_KIND] == h.KIND_CRASH
    assert copy.headers[h.ERROR].startswith("killed the consumer 3 times")
    assert CrashJournal(path).crashes("q", str(candle.message_id)) == 0  # forgotten once dead-lettered

    # Fewer crashes: handled, and its journal entries are gone afterwards.
    other = make_candle(1)
    CrashJournal(path).begin("q", str(other.message_id))
    consumer, _ = consumer_for(handler, journal=CrashJournal(path))
    await consumer.on_message(RecordedDelivery(other, redelivered=True))  # type: ignore[arg-type]
    assert handled == [1]
    assert CrashJournal(path).crashes("q", str(other.message_id)) == 0

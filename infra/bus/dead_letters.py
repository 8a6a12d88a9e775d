"""Look into dead-letter queues and move their messages back, for the operator (`tradebus
dead-letters`).

A message moved back gets its attempts again: the headers that counted its failures and told
why it died are removed (the last error is kept as ``x-tradebus-previous-error``), so the
consumer sees a fresh message with ``BUS_MAX_ATTEMPTS`` permanent failures and
``BUS_MAX_CRASHES`` crashes ahead of it. Each copy is published with a broker confirmation
before its dead letter is acked, so a failure half-way leaves the message in one queue or both
(at-least-once: the consumers are idempotent), never in neither. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from infra.bus import headers as h
from infra.bus.bus import connect_plain
from infra.bus.publisher import copy_of
from infra.bus.topology import dead_letter_queue_name

T = TypeVar("T")

# Headers that record a message's failures, written by the consumer or by the broker's own
# dead-lettering (x-delivery-limit of a quorum queue): a requeued copy starts without them.
_FAILURE_HEADERS = (
    h.ATTEMPT, h.FAILURES, h.ERROR, h.ERROR_KIND, h.EXCEPTION, h.DEAD_LETTERED_AT, h.ORIGINAL_QUEUE,
    "x-death", "x-first-death-queue", "x-first-death-reason", "x-first-death-exchange",
    "x-last-death-queue", "x-last-death-reason", "x-last-death-exchange", "x-delivery-count",
)


class DeadLetterError(Exception):
    """A dead-letter operation could not be done (queue missing, broker not answering in time)."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, as the operator needs to judge it."""

    message_id: str
    schema: str
    kind: str
    error: str
    attempts: str
    dead_lettered_at: str
    routing_key: str


@dataclass(frozen=True)
class DeadLetterQueue:
    """A queue's dead-letter queue: how many messages it holds and the first few of them."""

    queue: str
    count: int
    sample: tuple[DeadLetter, ...]


async def bounded(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """Await with a deadline; on expiry say what was waited for."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise DeadLetterError(f"no answer within {timeout:g} s while {what}") from None


async def connect(url: str, timeout: float) -> aio_pika.abc.AbstractConnection:
    """A plain (not robust) connection: an operator command fails fast and says why."""
    try:
        return await bounded(connect_plain(url, timeout, "tradebus-dead-letters"), timeout, "connecting to RabbitMQ")
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        raise DeadLetterError(f"cannot connect to RabbitMQ: {exc!r}") from exc


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    death = _first_death(headers)
    return DeadLetter(
        message_id=str(message.message_id or "-"),
        schema=str(message.type or "-"),
        kind=str(headers.get(h.ERROR_KIND) or ("broker:" + str(death.get("reason", "?")) if death else "-")),
        error=str(headers.get(h.ERROR) or "-")[:300],
        attempts=str(headers.get(h.ATTEMPT) or headers.get("x-delivery-count") or "-"),
        dead_lettered_at=str(headers.get(h.DEAD_LETTERED_AT) or death.get("time") or "-"),
        routing_key=_original_routing_key(message),
    )


# Public name: the alert notifier describes the copies of dead letters it receives the same way.
describe_dead_letter = _describe


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    return deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}


def _original_routing_key(message: AbstractIncomingMessage) -> str:
    """The topic the message was first published with (the DLQ copy's own key is the queue's)."""
    headers = message.headers or {}
    if headers.get(h.ROUTING_KEY):
        return str(headers[h.ROUTING_KEY])
    keys = _first_death(headers).get("routing-keys")
    if isinstance(keys, list) and keys:
        return str(keys[0])
    return str(message.routing_key or "")


async def _passive(channel: AbstractChannel, name: str, timeout: float) -> AbstractQueue:
    try:
        return await bounded(channel.declare_queue(name, passive=True), timeout, f"looking up queue {name}")
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise DeadLetterError(f"queue {name} does not exist") from None


async def _take(queue: AbstractQueue, timeout: float) -> AbstractIncomingMessage | None:
    """The next message of ``queue`` unacked, or None when it is empty."""
    return await bounded(queue.get(no_ack=False, fail=False, timeout=timeout), timeout, f"reading {queue.name}")


async def inspect_dead_letters(
    url: str, queues: list[str], *, show: int = 5, timeout: float = 10.0
) -> list[DeadLetterQueue]:
    """Count each queue's dead letters and describe the first ``show``; nothing is consumed (each
    sampled message is returned to its queue)."""
    connection = await connect(url, timeout)
    found: list[DeadLetterQueue] = []
    async with connection:
        for queue in queues:
            channel = await bounded(connection.channel(), timeout, "opening a channel")
            dlq = await _passive(channel, dead_letter_queue_name(queue), timeout)
            count = int(dlq.declaration_result.message_count or 0)
            held: list[AbstractIncomingMessage] = []
            try:
                for _ in range(min(show, count)):
                    message = await _take(dlq, timeout)
                    if message is None:
                        break
                    held.append(message)
            finally:
                for message in held:
                    await bounded(message.nack(requeue=True), timeout, f"returning a message to {dlq.name}")
                await channel.close()
            found.append(DeadLetterQueue(queue, count, tuple(_describe(m) for m in held)))
    return found


def requeued_headers(message: AbstractIncomingMessage, now: datetime | None = None) -> dict[str, Any]:
    """The headers of the copy moved back: failure counts and reasons gone, the original routing
    key and the last error kept, the requeue recorded."""
    headers = dict(message.headers or {})
    previous_error = headers.get(h.ERROR)
    for name in _FAILURE_HEADERS:
        headers.pop(name, None)
    headers[h.ROUTING_KEY] = _original_routing_key(message)
    if previous_error:
        headers[h.PREVIOUS_ERROR] = str(previous_error)[: h.MAX_ERROR_LENGTH]
    headers[h.REQUEUED_AT] = (now or datetime.now(UTC)).isoformat()
    headers[h.REQUEUES] = int(headers.get(h.REQUEUES, 0)) + 1
    return headers


async def requeue_dead_letters(url: str, queue: str, *, limit: int | None = None, timeout: float = 10.0) -> int:
    """Move up to ``limit`` (default: all present now) messages from ``queue``'s dead-letter
    queue back to ``queue``, each confirmed before its dead letter is acked; the number moved."""
    connection = await connect(url, timeout)
    moved = 0
    async with connection:
        channel = await bounded(
            connection.channel(publisher_confirms=True, on_return_raises=True), timeout, "opening a channel"
        )
        await _passive(channel, queue, timeout)  # refuse to move messages to a queue that is gone
        dlq = await _passive(channel, dead_letter_queue_name(queue), timeout)
        # Only what is there now: a consumer dead-lettering again meanwhile cannot make this endless.
        budget = int(dlq.declaration_result.message_count or 0)
        if limit is not None:
            budget = min(budget, limit)
        while moved < budget:
            message = await _take(dlq, timeout)
            if message is None:
                break
            copy = copy_of(message, requeued_headers(message))
            try:
                # The default exchange routes straight to the queue: only its own consumer sees it again.
                await bounded(
                    channel.default_exchange.publish(copy, routing_key=queue, mandatory=True, timeout=timeout),
                    timeout,
                    f"the broker confirming the copy for {queue}",
                )
            except BaseException:
                await bounded(message.nack(requeue=True), timeout, f"returning a message to {dlq.name}")
                raise
            await bounded(message.ack(), timeout, f"acking the dead letter in {dlq.name}")
            moved += 1
    return moved

"""Manual-ack consumption with validation, bounded retries and dead-lettering.

The rules (DESIGN.md, "Delivery rules"):
- ack only after the handler returned, i.e. after its effects are committed;
- a payload that fails validation goes to the dead-letter queue at once, reason in a header;
- a handler exception is retried a bounded number of times, then dead-lettered with the error.
  A sequential consumer retries in place (the queue waits): re-publishing the message to the
  back of its queue would let the messages behind it overtake it, and order is what a
  sequential handler relies on (a BUY retried behind its own SELL turns the SELL into "no
  position"). A concurrent consumer re-publishes, so one failing message blocks nothing;
- nothing is acked without being handled, retried or dead-lettered first. If the retry or
  dead-letter publish itself fails, the message is requeued instead of acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from infra.bus import headers as h
from infra.bus.errors import PublishFailed
from infra.bus.publisher import Publisher
from infra.bus.stats import BusStats
from infra.logging import bind_correlation, clear_correlation, get_logger
from protocol import Message, MessageDecodeError, decode_any

log = get_logger(component="bus.consumer")


@dataclass(frozen=True)
class Delivery:
    """What a handler may want to know about the delivery besides the message itself."""

    queue: str
    routing_key: str
    redelivered: bool
    attempt: int
    headers: Mapping[str, Any]


Handler = Callable[[Message, Delivery], Awaitable[None]]


def retry_delay(attempt: int) -> float:
    """Backoff before re-queueing a failed message: 0.2 s, 0.4 s, 0.8 s ... capped at 5 s."""
    return float(min(0.2 * 2 ** (attempt - 1), 5.0))


class QueueConsumer:
    """Consumes one queue and runs one handler for the message types it accepts."""

    def __init__(
        self,
        queue: str,
        handler: Handler,
        accepts: tuple[type[Message], ...],
        publisher: Publisher,
        dead_letter_exchange: str,
        max_attempts: int,
        stats: BusStats,
        sequential: bool = True,
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._accepts = accepts
        self._publisher = publisher
        self._dlx = dead_letter_exchange
        self._max_attempts = max_attempts
        self._stats = stats
        # Ordering matters to most trading handlers (a window of candles, a fill sequence):
        # by default one message is handled at a time, in delivery order.
        self._lock = asyncio.Lock() if sequential else None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.last_message_at: datetime | None = None

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        """aio-pika callback: one delivery, from decode to ack."""
        self._in_flight += 1
        self._idle.clear()
        try:
            if self._lock is None:
                await self._process(incoming)
            else:
                async with self._lock:
                    await self._process(incoming)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no delivery is being processed (graceful shutdown)."""
        await self._idle.wait()

    async def _process(self, incoming: AbstractIncomingMessage) -> None:
        self.last_message_at = datetime.now(UTC)
        self._stats.consumed += 1
        try:
            message = decode_any(incoming.body)
        except MessageDecodeError as exc:
            await self._settle_dead(incoming, h.KIND_VALIDATION, f"validation: {exc.reason}", "MessageDecodeError")
            return
        if not isinstance(message, self._accepts):
            expected = ", ".join(model.__name__ for model in self._accepts)
            reason = f"queue {self.queue} accepts {expected}, got {type(message).__name__}"
            await self._settle_dead(incoming, h.KIND_UNEXPECTED_TYPE, reason, "UnexpectedMessageType")
            return
        delivery = self._delivery(incoming)
        bind_correlation(str(message.correlation_id))
        try:
            while True:
                try:
                    await self._handler(message, delivery)
                except Exception as exc:  # a handler failure is data: retry it or dead-letter it, never drop
                    self._stats.errors += 1
                    if self._lock is not None and delivery.attempt < self._max_attempts:
                        delivery = await self._retry_in_place(delivery, exc)
                        continue
                    await self._settle_failed(incoming, delivery, exc)
                else:
                    await incoming.ack()
                return
        finally:
            clear_correlation()

    async def _retry_in_place(self, delivery: Delivery, exc: Exception) -> Delivery:
        """Back off and hand the same delivery to the handler again, as the next attempt.

        The message stays unacked meanwhile, so a crash during the back-off redelivers it."""
        error = f"{type(exc).__name__}: {exc}"
        log.warning("handler failed, will retry", queue=self.queue, attempt=delivery.attempt, error=error, in_place=True)
        await asyncio.sleep(retry_delay(delivery.attempt))
        self._stats.retried += 1
        headers = {**delivery.headers, h.ATTEMPT: delivery.attempt + 1, h.ERROR: error[: h.MAX_ERROR_LENGTH]}
        return replace(delivery, attempt=delivery.attempt + 1, headers=headers)

    def _delivery(self, incoming: AbstractIncomingMessage) -> Delivery:
        headers = dict(incoming.headers or {})
        return Delivery(
            queue=self.queue,
            routing_key=str(headers.get(h.ROUTING_KEY) or incoming.routing_key or ""),
            redelivered=bool(incoming.redelivered),
            attempt=int(headers.get(h.ATTEMPT, 1)),
            headers=headers,
        )

    async def _settle_failed(self, incoming: AbstractIncomingMessage, delivery: Delivery, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if delivery.attempt >= self._max_attempts:
            log.error("handler failed, dead-lettering", queue=self.queue, attempt=delivery.attempt, error=error)
            await self._settle_dead(incoming, h.KIND_HANDLER, error, type(exc).__name__, delivery.attempt)
            return
        log.warning("handler failed, will retry", queue=self.queue, attempt=delivery.attempt, error=error)
        await asyncio.sleep(retry_delay(delivery.attempt))
        retry_headers = {
            **delivery.headers,
            h.ATTEMPT: delivery.attempt + 1,
            h.ROUTING_KEY: delivery.routing_key,
            h.ERROR: error[: h.MAX_ERROR_LENGTH],
        }
        # Re-queue through the default exchange straight to this queue: only this consumer retries.
        await self._forward_then_ack(incoming, retry_headers, exchange="", routing_key=self.queue)
        self._stats.retried += 1

    async def _settle_dead(
        self, incoming: AbstractIncomingMessage, kind: str, error: str, exception: str, attempts: int = 1
    ) -> None:
        headers = dict(incoming.headers or {})
        headers.update(
            {
                h.ERROR: error[: h.MAX_ERROR_LENGTH],
                h.ERROR_KIND: kind,
                h.EXCEPTION: exception,
                h.ATTEMPT: attempts,
                h.ORIGINAL_QUEUE: self.queue,
                h.ROUTING_KEY: str(headers.get(h.ROUTING_KEY) or incoming.routing_key or ""),
                h.DEAD_LETTERED_AT: datetime.now(UTC).isoformat(),
            }
        )
        if kind != h.KIND_HANDLER:
            log.warning("message refused, dead-lettering", queue=self.queue, kind=kind, error=error)
        if await self._forward_then_ack(incoming, headers, exchange=self._dlx, routing_key=self.queue):
            self._stats.dead_lettered += 1

    async def _forward_then_ack(
        self, incoming: AbstractIncomingMessage, headers: dict[str, Any], exchange: str, routing_key: str
    ) -> bool:
        """Publish a copy (confirmed), then ack the original. If the copy was not confirmed the
        original is requeued, so the message exists at least once at every moment."""
        copy = aio_pika.Message(
            body=incoming.body,
            headers=headers,
            content_type=incoming.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=incoming.message_id,
            correlation_id=incoming.correlation_id,
            type=incoming.type,
            app_id=incoming.app_id,
            timestamp=incoming.timestamp,
        )
        try:
            await self._publisher.publish(copy, routing_key=routing_key, exchange=exchange)
        except PublishFailed as exc:
            log.error("could not forward message, requeueing it", queue=self.queue, error=str(exc))
            try:
                await incoming.nack(requeue=True)
            except Exception:  # channel already gone: the broker requeues unacked messages itself
                pass
            return False
        await incoming.ack()
        return True

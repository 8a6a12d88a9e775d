"""Manual-ack consumption with validation, transient/permanent retries and dead-lettering.

The rules (DESIGN.md, "Delivery rules" and "Faults"; claudedocs/delivery.md):
- ack only after the handler returned, i.e. after its effects are committed;
- a payload that fails validation goes to the dead-letter queue at once, reason in a header;
- a handler failure is classified by infra.faults. A **transient** one (a store or the broker
  unreachable, a serialization failure, a timeout) is retried in place without a limit, with
  capped backoff: the message stays unacked and keeps its place, so order holds and nothing is
  lost however long the outage lasts, and the consumer reports the problem (the agent is
  DEGRADED) until the message goes through. A **permanent** one counts toward
  ``max_attempts``, then the message is dead-lettered with the error;
- a sequential consumer retries permanent failures in place too (order is what it relies on); a
  concurrent one re-publishes them to the back of its queue, so one bad message blocks nothing;
- nothing is acked without being handled, retried or dead-lettered first. If the retry or
  dead-letter publish itself fails, the message is requeued instead of acked;
- a shutdown interrupts a retry without acking, and so does the loss of the delivery's channel:
  the broker redelivers the message (idempotent handlers make the repeat harmless);
- a message that was in handling when ``max_crashes`` consumer processes died is dead-lettered
  ("killed the consumer N times") instead of being redelivered forever (infra.bus.journal); a
  message that was in handling during a crash is handled alone (infra.bus.isolation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiormq
from aio_pika.abc import AbstractIncomingMessage

from infra.bus import headers as h
from infra.bus.errors import PublishFailed
from infra.bus.isolation import IsolationGate, Pass
from infra.bus.journal import CrashJournal, message_key
from infra.bus.publisher import Publisher, copy_of
from infra.bus.retry import RetryPolicy, retrying_problem
from infra.bus.stats import BusStats
from infra.faults import Fault, classify
from infra.logging import bind_correlation, clear_correlation, get_logger
from infra.metrics import catalogue as metrics
from infra.metrics.observe import Timer
from protocol import Message, MessageDecodeError, decode_any, topic_for

log = get_logger(component="bus.consumer")

__all__ = ["Delivery", "Handler", "QueueConsumer"]

# What acking or nacking on a channel that died under us raises (aio-pika checks the channel
# first; aiormq raises while writing to a closed connection).
_SETTLE_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, asyncio.TimeoutError)


@dataclass(frozen=True)
class Delivery:
    """What a handler may want to know about the delivery besides the message itself.

    ``attempt`` counts the handler's tries of this message (transient retries included)."""

    queue: str
    routing_key: str
    redelivered: bool
    attempt: int
    headers: Mapping[str, Any]


Handler = Callable[[Message, Delivery], Awaitable[None]]


@dataclass
class _Retrying:
    """One message waiting out a transient failure (for the consumer's health problem)."""

    reason: str
    since: datetime


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
        *,
        policy: RetryPolicy | None = None,
        journal: CrashJournal | None = None,
        gate: IsolationGate | None = None,
        metrics_label: str | None = None,
        partitions: int = 1,
    ) -> None:
        self.queue = queue
        # The bus's partitions (BUS_PARTITIONS): part of the routing key a message belongs under.
        self._partitions = partitions
        self._handler = handler
        self._accepts = accepts
        self._publisher = publisher
        self._dlx = dead_letter_exchange
        self._policy = replace(policy or RetryPolicy(), max_attempts=max_attempts)
        self._stats = stats
        self._journal = journal
        self._gate = gate or IsolationGate()
        # Ordering matters to most trading handlers (a window of candles, a fill sequence):
        # by default one message is handled at a time, in delivery order.
        self._lock = asyncio.Lock() if sequential else None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._retrying: dict[int, _Retrying] = {}
        self.last_message_at: datetime | None = None
        # Children resolved once: the labels of this queue never change. The label is the queue
        # without a per-run exchange prefix (Bus.consume passes it).
        label = metrics_label or queue
        self._m_consumed = metrics.CONSUMED.labels(queue=label)
        self._m_retried = metrics.RETRIED.labels(queue=label)
        self._m_ok = metrics.HANDLER_SECONDS.labels(queue=label, outcome="ok")
        self._m_error = metrics.HANDLER_SECONDS.labels(queue=label, outcome="error")
        self._label = label

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    def problem(self) -> str | None:
        """What the consumer is waiting out, e.g. ``retrying q: Postgres unreachable
        (ConnectionRefusedError) since 06:31:02``; None when nothing is being retried."""
        if not self._retrying:
            return None
        oldest = min(self._retrying.values(), key=lambda r: r.since)
        return retrying_problem(self.queue, oldest.reason, oldest.since, len(self._retrying) - 1)

    def interrupt(self) -> None:
        """Stop retrying and stop starting new messages (shutdown). Nothing further is acked
        that was not handled; unhandled deliveries are redelivered once the channel closes."""
        self._stopping.set()

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
        if self._stopping.is_set():
            return  # shutting down: leave it unacked for the next consumer, in its place
        self.last_message_at = datetime.now(UTC)
        self._stats.consumed += 1
        self._m_consumed.inc()
        key = message_key(incoming)
        # A first delivery cannot have killed anyone yet: only a redelivery is looked up.
        crashes = 0
        if self._journal is not None and incoming.redelivered:
            crashes = self._journal.crashes(self.queue, key)
        if crashes >= self._policy.max_crashes:
            error = f"killed the consumer {crashes} times (its handling started and never finished)"
            log.error("message keeps killing its consumer, dead-lettering", queue=self.queue, crashes=crashes)
            settled = await self._settle_dead(incoming, h.KIND_CRASH, error, "ConsumerKilled", crashes, 0)
            self._end_journal(key, settled)
            return
        if crashes:
            log.warning(
                "message was in handling when a consumer died; handling it alone", queue=self.queue, crashes=crashes
            )
        async with self._gate.enter(exclusive=crashes > 0) as admitted:
            if self._journal is not None:
                self._journal.begin(self.queue, key)
            settled = False
            try:
                settled = await self._decode_and_handle(incoming, admitted)
            finally:
                self._end_journal(key, settled)

    def _end_journal(self, key: str, settled: bool) -> None:
        if self._journal is not None:
            self._journal.end(self.queue, key, settled=settled)

    async def _decode_and_handle(self, incoming: AbstractIncomingMessage, admitted: Pass) -> bool:
        """True when the delivery was settled (acked, or dead-lettered and acked)."""
        try:
            message = decode_any(incoming.body)
        except MessageDecodeError as exc:
            reason = f"validation: {exc.reason}"
            return await self._settle_dead(incoming, h.KIND_VALIDATION, reason, "MessageDecodeError")
        if not isinstance(message, self._accepts):
            expected = ", ".join(model.__name__ for model in self._accepts)
            reason = f"queue {self.queue} accepts {expected}, got {type(message).__name__}"
            return await self._settle_dead(incoming, h.KIND_UNEXPECTED_TYPE, reason, "UnexpectedMessageType")
        if (misrouted := self._misrouted(incoming, message)) is not None:
            log.error("message refused: its routing key does not match its content", queue=self.queue, reason=misrouted)
            return await self._settle_dead(incoming, h.KIND_MISROUTED, misrouted, "MisroutedMessage")
        bind_correlation(str(message.correlation_id))
        try:
            return await self._handle(incoming, message, admitted)
        finally:
            self._retrying.pop(id(incoming), None)
            clear_correlation()

    def _misrouted(self, incoming: AbstractIncomingMessage, message: Message) -> str | None:
        """Why a message published on the bus exchange is refused: its routing key is not the one
        its own fields give (``topic_for``). The broker lets each user publish only its own keys
        (decision 0011), but it cannot read bodies: without this, the mcp user could publish a
        signal of strategy "rsi" under its own ``strategy.signal.mcp-*`` key, or an emergency-stop
        release under the engage key. Copies this consumer re-published (default exchange) and
        dead letters moved back (``tradebus dead-letters requeue``) were checked on first arrival."""
        if not incoming.exchange or incoming.exchange == self._dlx:
            return None
        try:
            expected = topic_for(message, self._partitions)
        except TypeError:  # a message type without a topic of its own: nothing to compare
            return None
        if incoming.routing_key == expected:
            return None
        return (f"{type(message).__name__} published under routing key {incoming.routing_key!r}; "
                f"its content belongs under {expected!r} (forged or misrouted)")

    async def _handle(self, incoming: AbstractIncomingMessage, message: Message, admitted: Pass) -> bool:
        """Call the handler until it succeeds, fails permanently too often, or we must stop.
        True when the delivery was settled (acked, or dead-lettered and acked)."""
        delivery = self._delivery(incoming)
        failures = int(delivery.headers.get(h.FAILURES, 0))  # permanent ones, carried by re-published copies
        failed_tries = 0  # consecutive failed tries here, for the backoff
        while True:
            timer = Timer()
            try:
                await self._handler(message, delivery)
            except Exception as exc:  # a handler failure is data: retry it or dead-letter it, never drop
                self._m_error.observe(timer.seconds)
                self._stats.errors += 1
                failed_tries += 1
                fault = classify(exc)
                if not fault.transient:
                    self._retrying.pop(id(incoming), None)  # a bug now, no longer an outage to report
                if fault.transient:
                    self._note_transient(incoming, delivery, fault)
                    await admitted.release_exclusive()  # an outage, not a killer: let the others run
                elif (failures := failures + 1) >= self._policy.max_attempts:
                    error = f"{type(exc).__name__}: {exc}"
                    log.error("handler failed, dead-lettering", queue=self.queue, attempt=delivery.attempt, error=error)
                    return await self._settle_dead(
                        incoming, h.KIND_HANDLER, error, type(exc).__name__, delivery.attempt, failures
                    )
                elif self._lock is None:  # concurrent: to the back of the queue, blocking nothing
                    return await self._republish(incoming, delivery, exc, failures, self._policy.delay(failed_tries))
                else:
                    log.warning(
                        "handler failed, will retry", queue=self.queue, attempt=delivery.attempt,
                        error=f"{type(exc).__name__}: {exc}", failures=failures, in_place=True,
                    )
                if not await self._wait_to_retry(incoming, self._policy.delay(failed_tries)):
                    return False  # stopping, or the channel is gone: the broker redelivers it
                self._stats.retried += 1
                self._m_retried.inc()
                delivery = replace(
                    delivery,
                    attempt=delivery.attempt + 1,
                    headers={
                        **delivery.headers, h.ATTEMPT: delivery.attempt + 1, h.ERROR: str(fault)[: h.MAX_ERROR_LENGTH]
                    },
                )
            else:
                self._m_ok.observe(timer.seconds)
                return await self._settle(incoming, "ack")

    def _note_transient(self, incoming: AbstractIncomingMessage, delivery: Delivery, fault: Fault) -> None:
        retrying = self._retrying.get(id(incoming))
        if retrying is None:
            self._retrying[id(incoming)] = _Retrying(fault.reason, datetime.now(UTC))
        else:
            retrying.reason = fault.reason  # the outage may change face (refused, then timed out)
        log.warning(
            "transient failure, retrying without limit", queue=self.queue, attempt=delivery.attempt, reason=fault.reason
        )

    async def _wait_to_retry(self, incoming: AbstractIncomingMessage, delay: float) -> bool:
        """Back off; False when the consumer is stopping or the delivery's channel is gone."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except asyncio.TimeoutError:
            pass
        if self._stopping.is_set():
            log.info("retry interrupted by shutdown; the message stays unacked", queue=self.queue)
            return False
        if not _channel_open(incoming):
            log.warning("channel lost while retrying; the broker redelivers the message", queue=self.queue)
            return False
        return True

    async def _settle(self, incoming: AbstractIncomingMessage, how: str) -> bool:
        """Ack or nack(requeue); survive a channel that died under us (the broker requeued the
        delivery already and redelivers it; idempotent handlers make the repeat harmless)."""
        try:
            if how == "ack":
                await incoming.ack()
            else:
                await incoming.nack(requeue=True)
        except _SETTLE_ERRORS as exc:
            log.warning(f"{how} lost with the channel; the broker redelivers", queue=self.queue, error=repr(exc))
            return False
        return True

    def _delivery(self, incoming: AbstractIncomingMessage) -> Delivery:
        headers = dict(incoming.headers or {})
        return Delivery(
            queue=self.queue,
            routing_key=str(headers.get(h.ROUTING_KEY) or incoming.routing_key or ""),
            redelivered=bool(incoming.redelivered),
            attempt=int(headers.get(h.ATTEMPT, 1)),
            headers=headers,
        )

    async def _republish(
        self, incoming: AbstractIncomingMessage, delivery: Delivery, exc: Exception, failures: int, delay: float
    ) -> bool:
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "handler failed, will retry", queue=self.queue, attempt=delivery.attempt, error=error, failures=failures
        )
        await asyncio.sleep(delay)
        retry_headers = {
            **delivery.headers,
            h.ATTEMPT: delivery.attempt + 1,
            h.FAILURES: failures,
            h.ROUTING_KEY: delivery.routing_key,
            h.ERROR: error[: h.MAX_ERROR_LENGTH],
        }
        # Re-queue through the default exchange straight to this queue: only this consumer retries.
        if not await self._forward_then_ack(incoming, retry_headers, exchange="", routing_key=self.queue):
            return False
        self._stats.retried += 1
        self._m_retried.inc()
        return True

    async def _settle_dead(
        self,
        incoming: AbstractIncomingMessage,
        kind: str,
        error: str,
        exception: str,
        attempts: int = 1,
        failures: int | None = None,
    ) -> bool:
        headers = dict(incoming.headers or {})
        headers.update(
            {
                h.ERROR: error[: h.MAX_ERROR_LENGTH],
                h.ERROR_KIND: kind,
                h.EXCEPTION: exception,
                h.ATTEMPT: attempts,
                h.FAILURES: attempts if failures is None else failures,
                h.ORIGINAL_QUEUE: self.queue,
                h.ROUTING_KEY: str(headers.get(h.ROUTING_KEY) or incoming.routing_key or ""),
                h.DEAD_LETTERED_AT: datetime.now(UTC).isoformat(),
            }
        )
        if kind != h.KIND_HANDLER:
            log.warning("message refused, dead-lettering", queue=self.queue, kind=kind, error=error)
        if not await self._forward_then_ack(incoming, headers, exchange=self._dlx, routing_key=self.queue):
            return False
        self._stats.dead_lettered += 1
        metrics.DEAD_LETTERED.labels(queue=self._label, reason=kind).inc()
        return True

    async def _forward_then_ack(
        self, incoming: AbstractIncomingMessage, headers: dict[str, Any], exchange: str, routing_key: str
    ) -> bool:
        """Publish a copy (confirmed), then ack the original. If the copy was not confirmed the
        original is requeued, so the message exists at least once at every moment."""
        copy = copy_of(incoming, headers)
        try:
            await self._publisher.publish(copy, routing_key=routing_key, exchange=exchange)
        except PublishFailed as exc:
            log.error("could not forward message, requeueing it", queue=self.queue, error=str(exc))
            await self._settle(incoming, "nack")
            return False
        return await self._settle(incoming, "ack")


def _channel_open(incoming: AbstractIncomingMessage) -> bool:
    """Is the channel this delivery came on still open (its delivery tag still valid)?"""
    try:
        incoming.channel  # noqa: B018 - aio-pika raises ChannelInvalidStateError once it closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return False
    return True

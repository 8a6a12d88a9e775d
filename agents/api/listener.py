"""The API's ear on the bus: one private queue that copies live events into the stream's ring.

It must never hold the agents back. The queue is the API's own (exclusive, auto-delete, named
by aio-pika so a robust reconnect re-declares it), bounded (``x-max-length`` with drop-head: when
the API falls behind, the oldest copies are dropped, never the agents' messages) and consumed
with auto-ack, so nothing waits for the API. The agents' durable queues are untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from agents.api.stream import EventRing
from infra.logging import get_logger
from protocol import (
    CancelOrder,
    Candle,
    EmergencyStop,
    ExecutionReport,
    Heartbeat,
    IndicatorSnapshot,
    Message,
    OrderRequest,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
    topics,
)
from protocol.codec import MessageDecodeError, decode_any

__all__ = ["LISTENED_TOPICS", "BusListener", "event_type"]

log = get_logger(component="api.listener")

LISTENED_TOPICS: tuple[str, ...] = (
    topics.ALL_CANDLES, topics.ALL_INDICATORS, topics.ALL_SIGNALS, topics.ALL_ORDERS,
    topics.ALL_REJECTIONS, topics.ALL_EXECUTION_REPORTS, topics.ALL_POSITIONS,
    topics.ALL_HEARTBEATS, topics.risk_metrics(), topics.ALL_CONTROL,
)

_TYPES: dict[type[Message], str] = {
    Candle: "candle", IndicatorSnapshot: "indicators", Signal: "signal", OrderRequest: "order",
    RiskRejection: "rejection", ExecutionReport: "report", PositionUpdate: "position",
    Heartbeat: "heartbeat", RiskMetrics: "risk_metrics", EmergencyStop: "control", CancelOrder: "control",
}
# Enough for a burst of a fast replay; the oldest copies go first when the API cannot keep up.
QUEUE_MAX_LENGTH = 10_000


def event_type(message: Message) -> str:
    """The stream's event type of a bus message (control messages added later are "control")."""
    found = _TYPES.get(type(message))
    if found is not None:
        return found
    return "control" if message.SCHEMA_NAME.startswith("control.") else message.SCHEMA_NAME


class BusListener:
    """Copies every listened message into ``ring``; keeps the newest heartbeat per agent."""

    def __init__(self, ring: EventRing, exchange: str, on_message: Callable[[Message], None] | None = None) -> None:
        self.ring = ring
        self.exchange = exchange
        self.heartbeats: dict[str, tuple[Heartbeat, datetime]] = {}
        self.started_at = datetime.now(UTC)
        self.received = 0
        self.undecodable = 0
        self._on_message = on_message
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None

    @property
    def listening(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def start(self, connection: AbstractRobustConnection, timeout: float) -> None:
        """Declare the private queue, bind it to the listened topics, consume with auto-ack."""
        async with asyncio.timeout(timeout):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=256)
            queue = await channel.declare_queue(
                "", exclusive=True, auto_delete=True,
                arguments={"x-max-length": QUEUE_MAX_LENGTH, "x-overflow": "drop-head"},
            )
            for pattern in LISTENED_TOPICS:
                await queue.bind(self.exchange, routing_key=pattern)
            await queue.consume(self._deliver, no_ack=True)
        self._channel, self._queue = channel, queue
        log.info("listening", exchange=self.exchange, queue=queue.name, topics=len(LISTENED_TOPICS))

    async def _deliver(self, incoming: AbstractIncomingMessage) -> None:
        try:
            message = decode_any(incoming.body)
        except MessageDecodeError as exc:
            # Not ours to dead-letter (the agents' own queues do that); just not shown.
            self.undecodable += 1
            log.warning("undecodable message not streamed", routing_key=incoming.routing_key, error=str(exc)[:200])
            return
        self.received += 1
        if isinstance(message, SignalsDone):
            return  # a marker between the risk manager and the strategies, one per candle: not an event to show
        if isinstance(message, Heartbeat):
            self.heartbeats[message.agent] = (message, datetime.now(UTC))
        self.ring.append(event_type(message), {
            "routing_key": incoming.routing_key or "",
            "message": message.model_dump(mode="json", by_alias=True),
        })
        if self._on_message is not None:
            self._on_message(message)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            try:
                await asyncio.wait_for(self._channel.close(), 5)
            except Exception as exc:  # a broker that is gone has nothing left to close
                log.warning("listener channel not closed", error=repr(exc))
        self._channel = self._queue = None

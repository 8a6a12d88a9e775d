"""Exchanges and queues of the bus, declared idempotently by every agent at start.

Every agent declares the whole topology (not only its own queues). A publisher uses mandatory
publishing, so a message for which no queue is bound yet would be an error; declaring everything
up front means start-up order between agents does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from protocol import topics

# A message that keeps failing in a way that kills the consumer (so our own retry logic never
# runs) is dead-lettered by the broker after this many deliveries; quorum queues only.
BROKER_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class QueueSpec:
    """One durable queue: its name, the topic patterns bound to it, and its limits."""

    name: str
    bindings: tuple[str, ...]
    consumer: str
    # Telemetry queues (heartbeats) are bounded: old entries are worthless, unbounded growth is not.
    max_length: int | None = None
    message_ttl_ms: int | None = None
    # Whether the broker dead-letters what the queue drops (overflow, expiry, delivery limit).
    # Not for heartbeats: a beat pushed out by newer ones or expired unread is the limit doing its
    # job, not a failure; dead-lettered, a run longer than the limit (1,000 beats: 200 s of five
    # agents at 1 s) ended with dead letters and a FAILing reality check. A heartbeat the monitor
    # refuses is still dead-lettered by the consumer itself (the DLQ and its binding remain).
    dead_letter_dropped: bool = True

    @property
    def dead_letter_queue(self) -> str:
        return dead_letter_queue_name(self.name)


@dataclass(frozen=True)
class Topology:
    """The exchange, its dead-letter exchange, and the queues bound to it."""

    exchange: str
    queues: tuple[QueueSpec, ...] = field(default_factory=tuple)

    @property
    def dead_letter_exchange(self) -> str:
        return dead_letter_exchange_name(self.exchange)

    def queue(self, name: str) -> QueueSpec:
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(f"queue {name!r} is not part of the topology of exchange {self.exchange!r}")

    def with_queues(self, *specs: QueueSpec) -> "Topology":
        return Topology(self.exchange, self.queues + specs)


def dead_letter_exchange_name(exchange: str) -> str:
    return f"{exchange}.dlx"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


def system_topology(exchange: str = topics.EXCHANGE) -> Topology:
    """The queues of the five agents and the monitor, one per consuming agent and purpose."""
    prefix = exchange
    return Topology(
        exchange,
        (
            QueueSpec(f"{prefix}.technical_analysis.candles", (topics.ALL_CANDLES,), "technical_analysis"),
            QueueSpec(f"{prefix}.strategy.indicators", (topics.ALL_INDICATORS,), "strategy"),
            QueueSpec(f"{prefix}.risk_manager.signals", (topics.ALL_SIGNALS,), "risk_manager"),
            QueueSpec(f"{prefix}.risk_manager.execution_reports", (topics.ALL_EXECUTION_REPORTS,), "risk_manager"),
            # Every candle: the risk manager enforces protective exits on it (decision 0023).
            QueueSpec(f"{prefix}.risk_manager.candles", (topics.ALL_CANDLES,), "risk_manager"),
            QueueSpec(
                f"{prefix}.risk_manager.control",
                (topics.ALL_EMERGENCY_STOP, topics.pause_strategy(), topics.close_position()),
                "risk_manager",
            ),
            QueueSpec(f"{prefix}.execution.orders", (topics.ALL_ORDERS,), "execution"),
            QueueSpec(f"{prefix}.execution.control", (topics.ALL_EMERGENCY_STOP, topics.cancel_order()), "execution"),
            # Paper mode fills resting limit orders from later candles; live mode acks them unread.
            QueueSpec(f"{prefix}.execution.candles", (topics.ALL_CANDLES,), "execution"),
            QueueSpec(
                f"{prefix}.monitor.events",
                # Signals, orders and execution reports too: the run command counts them and
                # waits for every order's terminal report (low volume, bounded queue).
                (
                    topics.ALL_GAPS, topics.ALL_REJECTIONS, topics.ALL_POSITIONS, topics.risk_metrics(),
                    topics.ALL_SIGNALS, topics.ALL_ORDERS, topics.ALL_EXECUTION_REPORTS,
                ),
                "monitor",
                max_length=100_000,
            ),
            QueueSpec(
                f"{prefix}.monitor.heartbeats",
                (topics.ALL_HEARTBEATS,),
                "monitor",
                max_length=1_000,
                message_ttl_ms=10 * 60 * 1000,
                dead_letter_dropped=False,
            ),
        ),
    )


def server_supports_quorum(connection: AbstractRobustConnection) -> bool:
    """Quorum queues exist from RabbitMQ 3.8 on."""
    transport = connection.transport
    if transport is None:
        return False
    raw = transport.connection.server_properties.get("version", "0")
    version = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (3, 8)


def _queue_arguments(spec: QueueSpec, topology: Topology, quorum: bool) -> dict[str, object]:
    args: dict[str, object] = {}
    if spec.dead_letter_dropped:
        args["x-dead-letter-exchange"] = topology.dead_letter_exchange
        args["x-dead-letter-routing-key"] = spec.name
    if quorum:
        args["x-queue-type"] = "quorum"
        args["x-delivery-limit"] = BROKER_DELIVERY_LIMIT
    if spec.max_length is not None:
        args["x-max-length"] = spec.max_length
        args["x-overflow"] = "drop-head"
    if spec.message_ttl_ms is not None:
        args["x-message-ttl"] = spec.message_ttl_ms
    return args


async def declare_topology(channel: AbstractChannel, topology: Topology, *, quorum: bool) -> AbstractExchange:
    """Declare the exchange, the dead-letter exchange, every queue, its DLQ and its bindings."""
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    for spec in topology.queues:
        # The DLQ is never consumed by the agents and must never drop what it holds: no limits.
        dlq_args: dict[str, object] = {"x-queue-type": "quorum"} if quorum else {}
        dlq = await channel.declare_queue(spec.dead_letter_queue, durable=True, arguments=dlq_args)
        await dlq.bind(dlx, routing_key=spec.name)
        queue = await channel.declare_queue(spec.name, durable=True, arguments=_queue_arguments(spec, topology, quorum))
        for pattern in spec.bindings:
            await queue.bind(exchange, routing_key=pattern)
    return exchange


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything `declare_topology` made (tests clean up their isolated names)."""
    for spec in topology.queues:
        await channel.queue_delete(spec.name)
        await channel.queue_delete(spec.dead_letter_queue)
    await channel.exchange_delete(topology.exchange)
    await channel.exchange_delete(topology.dead_letter_exchange)

"""The bus an agent talks through: one robust connection, a confirmed publisher channel, and one
channel per consumed queue (QoS set explicitly on each)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from infra.bus.consumer import Handler, QueueConsumer
from infra.bus.isolation import IsolationGate
from infra.bus.journal import CrashJournal
from infra.bus.publisher import Publisher, to_amqp
from infra.bus.retry import RetryPolicy
from infra.bus.stats import BusStats
from infra.bus.topology import Topology, declare_topology, server_supports_quorum
from infra.logging import get_logger
from infra.metrics.observe import published, queue_label
from infra.settings import redact_url
from protocol import Message

log = get_logger(component="bus")


async def queue_counts(channel: AbstractChannel, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``, asked of the broker every time.

    Through the underlying channel: aio-pika's robust channel remembers a queue it declared and
    answers a passive declare with that first, stale result. A missing queue raises the
    broker's ChannelClosed (NOT_FOUND), which also closes ``channel``."""
    result = await (await channel.get_underlay_channel()).queue_declare(queue, passive=True)
    return int(result.message_count or 0), int(result.consumer_count or 0)


async def connect_plain(url: str, timeout: float, connection_name: str) -> aio_pika.abc.AbstractConnection:
    """A plain (not robust) connection, bounded as a whole by ``timeout``.

    For operator tools and probes: a robust connection retries forever on a broker that accepts
    TCP but never completes the AMQP handshake; this one raises TimeoutError instead."""
    return await asyncio.wait_for(
        aio_pika.connect(url, timeout=timeout, client_properties={"connection_name": connection_name}), timeout
    )


class Bus:
    """Publish protocol messages and consume queues with the delivery rules of DESIGN.md."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        connection_name: str,
        publish_timeout: float = 10.0,
        prefetch: int = 16,
        max_attempts: int = 5,
        quorum: bool | None = None,
        reconnect_interval: float = 1.0,
        retry_policy: RetryPolicy | None = None,
        crash_journal: Path | None = None,
        instance: int = 1,
        instances: int = 1,
        standby_delay: float = 0.0,
    ) -> None:
        self._url = url
        self.topology = topology
        self._connection_name = connection_name
        self._publish_timeout = publish_timeout
        self._prefetch = prefetch
        # BUS_MAX_ATTEMPTS bounds permanent failures only; transient ones retry without a limit.
        self._retry_policy = replace(retry_policy or RetryPolicy(), max_attempts=max_attempts)
        self._quorum = quorum
        self._reconnect_interval = reconnect_interval
        self.stats = BusStats()
        # Without a journal, only a quorum queue's x-delivery-limit bounds a message that kills
        # its consumer; agents always have one (BUS_CRASH_JOURNAL_DIR).
        self._journal = CrashJournal(crash_journal) if crash_journal is not None else None
        self._gate = IsolationGate()
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        # Strong references: aio-pika closes channels and consumers that get garbage-collected.
        self._channels: list[AbstractChannel] = []
        self._consumers: list[tuple[AbstractQueue, str, QueueConsumer, AbstractChannel]] = []
        self._depth_channel: AbstractChannel | None = None
        # Which share of each queue group this process subscribes to first (consume_group).
        self._instance, self._instances, self._standby_delay = instance, instances, standby_delay
        self._later: list[asyncio.Task[None]] = []

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("bus is not connected; call connect() first")
        return self._connection

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed and self._connection.connected.is_set()

    @property
    def consumers(self) -> list[QueueConsumer]:
        return [consumer for _, _, consumer, _ in self._consumers]

    def problems(self) -> list[str]:
        """What is wrong with the connection, a consumer's channel, or a message a consumer is
        retrying through a transient failure (the agent's heartbeat reports them: DEGRADED)."""
        found = [] if self.is_connected else ["bus disconnected"]
        if self._journal is not None and self._journal.problem is not None:
            found.append(self._journal.problem)
        for task in self._later:
            if task.done() and not task.cancelled() and task.exception() is not None:
                found.append(f"standby subscription {task.get_name()} failed: {task.exception()!r}")
        for _, _, consumer, channel in self._consumers:
            if channel.is_closed and self.is_connected:
                found.append(f"channel of consumer {consumer.queue} is closed")
            problem = consumer.problem()
            if problem is not None:
                found.append(problem)
        return found

    async def connect(self) -> None:
        """Connect (robustly), declare the topology, open the publisher channel."""
        log.info("connecting", url=redact_url(self._url), connection_name=self._connection_name)
        self._connection = await aio_pika.connect_robust(
            self._url,
            client_properties={"connection_name": self._connection_name},
            reconnect_interval=self._reconnect_interval,
            timeout=self._publish_timeout,
        )
        quorum = server_supports_quorum(self._connection) if self._quorum is None else self._quorum
        channel = await self._open_channel(publisher_confirms=True, on_return_raises=True)
        exchange = await declare_topology(channel, self.topology, quorum=quorum)
        self._publisher = Publisher(channel, exchange, self._publish_timeout)
        log.info("connected", exchange=self.topology.exchange, quorum=quorum, queues=len(self.topology.queues))

    async def _open_channel(self, **kwargs: Any) -> AbstractChannel:
        channel = await self.connection.channel(**kwargs)
        self._channels.append(channel)
        return channel

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("bus is not connected; call connect() first")
        return self._publisher

    async def publish(self, message: Message, *, routing_key: str | None = None) -> None:
        """Publish and wait for the broker's confirmation; raise PublishFailed otherwise.

        The routing key is derived from the message and the bus's partitions (protocol.topics)
        unless given."""
        key = routing_key if routing_key is not None else self.topology.routing_key(message)
        await self.publisher.publish(to_amqp(message), routing_key=key)
        self.stats.published += 1
        published(message)

    async def consume(
        self,
        queue: str,
        handler: Handler,
        accepts: tuple[type[Message], ...],
        *,
        sequential: bool = True,
        prefetch: int | None = None,
    ) -> QueueConsumer:
        """Start consuming a queue of the topology with manual acks."""
        self.topology.queue(queue)  # refuse queues the topology does not declare
        channel = await self._open_channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch or self._prefetch)
        amqp_queue = await channel.get_queue(queue, ensure=True)
        consumer = QueueConsumer(
            queue,
            handler,
            accepts,
            self.publisher,
            self.topology.dead_letter_exchange,
            self._retry_policy.max_attempts,
            self.stats,
            sequential=sequential,
            policy=self._retry_policy,
            journal=self._journal,
            gate=self._gate,
            metrics_label=queue_label(queue, self.topology.exchange),
            partitions=self.topology.partitions,
        )
        tag = await amqp_queue.consume(consumer.on_message, no_ack=False)
        self._consumers.append((amqp_queue, tag, consumer, channel))
        log.info("consuming", queue=queue, prefetch=prefetch or self._prefetch, sequential=sequential)
        return consumer

    async def consume_group(
        self,
        group: str,
        handler: Handler,
        accepts: tuple[type[Message], ...],
        *,
        sequential: bool = True,
        prefetch: int | None = None,
    ) -> list[QueueConsumer]:
        """Consume every partition queue of a queue group (topology.group) with one handler.

        Each partition has its own channel and consumer, so partitions are handled concurrently
        (sequentially within one: a symbol's order holds). The broker makes this consumer the
        active one of a partition only while no other instance's consumer is (single active
        consumer); a standby subscribes all the same and is handed the queue when that one goes."""
        specs = self.topology.group(group)
        own = [spec for k, spec in enumerate(specs) if k % self._instances == self._instance - 1]
        others = [spec for spec in specs if spec not in own]
        if self._standby_delay <= 0:
            own, others = list(specs), []
        consumers = [await self.consume(spec.name, handler, accepts, sequential=sequential, prefetch=prefetch)
                     for spec in own]
        if others:
            # The other instances' share, later: started together, each instance is first (so
            # active) on its own share, and waits behind the others on theirs.
            async def subscribe_later() -> None:
                await asyncio.sleep(self._standby_delay)
                for spec in others:
                    await self.consume(spec.name, handler, accepts, sequential=sequential, prefetch=prefetch)

            self._later.append(asyncio.create_task(subscribe_later(), name=f"standby-{group}"))
        return consumers

    async def group_depth(self, group: str) -> int:
        """Messages ready in all partition queues of a queue group."""
        return sum([await self.queue_depth(spec.name) for spec in self.topology.group(group)])

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (passive declare): how a producer applies backpressure.

        Bounded like a publish: while the robust connection reconnects, opening the channel or
        the declare would otherwise wait for as long as the broker is away (TimeoutError)."""
        async with asyncio.timeout(self._publish_timeout):
            if self._depth_channel is None or self._depth_channel.is_closed:
                self._depth_channel = await self._open_channel(publisher_confirms=False)
            return (await queue_counts(self._depth_channel, queue))[0]

    async def stop_consuming(self, timeout: float = 30.0) -> None:
        """Stop taking new deliveries and wait for in-flight handlers to finish.

        A handler call under way finishes (and is acked); a message waiting out a transient
        failure, or not started yet, stays unacked and is redelivered to the next consumer."""
        for task in self._later:
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)
        self._later.clear()
        for _, _, consumer, _ in self._consumers:
            consumer.interrupt()
        for amqp_queue, tag, _, _ in self._consumers:
            try:
                await amqp_queue.cancel(tag)
            except Exception as exc:  # a dead channel has nothing left to cancel
                log.warning("cancel failed", queue=amqp_queue.name, error=repr(exc))
        waits = [consumer.wait_idle() for _, _, consumer, _ in self._consumers]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except asyncio.TimeoutError:
                log.error("in-flight handlers did not finish before shutdown; unacked messages will be redelivered")
        self._consumers.clear()

    async def close(self) -> None:
        """Graceful close: stop consuming, finish in-flight work, close channels and connection."""
        await self.stop_consuming()
        for channel in reversed(self._channels):
            if not channel.is_closed:
                await channel.close()
        self._channels.clear()
        self._depth_channel = None
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None
        self._publisher = None
        if self._journal is not None:
            self._journal.close()

    async def __aenter__(self) -> "Bus":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

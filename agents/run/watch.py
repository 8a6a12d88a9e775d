"""The run command's view of the bus: it consumes the monitor queues into a :class:`Progress`.

It declares the run's whole topology before any agent starts, so it sees every heartbeat and
event of the run from the first message on. Its connection is robust (aio-pika reconnects and
restores the consumers after a broker restart); the queues are durable, so what was published
meanwhile is consumed afterwards. Depth reads raise while disconnected: callers bound them and
show the outage (command.py, services.py).
"""

from __future__ import annotations

import asyncio
import uuid

from agents.run.progress import EVENT_TYPES, Progress
from infra.bus import Bus, Delivery, QueueSpec, system_topology
from infra.logging import get_logger
from infra.settings import Settings
from protocol import Heartbeat, Message

MONITOR_CONSUMER = "monitor"

log = get_logger(component="run.watch")


class BusWatch:
    """Consumes ``{exchange}.monitor.heartbeats`` and ``{exchange}.monitor.events``."""

    def __init__(self, settings: Settings, progress: Progress) -> None:
        self.progress = progress
        self.bus = Bus(
            settings.rabbitmq_url.get_secret_value(),
            system_topology(settings.bus_exchange, settings.bus_partitions),
            connection_name=f"run-monitor-{uuid.uuid4().hex[:8]}",
            publish_timeout=settings.bus_publish_timeout,
            prefetch=64,
            max_attempts=settings.bus_max_attempts,
            quorum=settings.bus_quorum_queues,
        )

    def _monitor_queue(self, binding_of: str) -> str:
        for spec in self.bus.topology.queues:
            if spec.consumer == MONITOR_CONSUMER and binding_of in spec.bindings:
                return spec.name
        raise KeyError(f"no monitor queue bound to {binding_of}")

    @property
    def work_queues(self) -> list[QueueSpec]:
        """Queues consumed by agents (not by this monitor)."""
        return [spec for spec in self.bus.topology.queues if spec.consumer != MONITOR_CONSUMER]

    async def start(self) -> None:
        from protocol import topics

        await self.bus.connect()
        await self.bus.consume(self._monitor_queue(topics.ALL_HEARTBEATS), self._handle, (Heartbeat,))
        await self.bus.consume(self._monitor_queue(topics.ALL_POSITIONS), self._handle, EVENT_TYPES)

    async def _handle(self, message: Message, delivery: Delivery) -> None:
        self.progress.record(message)

    async def depths(self, queues: list[str]) -> dict[str, int]:
        """Ready messages per queue; raises when the broker cannot be asked (callers bound it)."""
        if not self.bus.is_connected:
            raise ConnectionError("connection to the broker lost; reconnecting")
        return {name: await self.bus.queue_depth(name) for name in queues}

    async def probe(self) -> None:
        """The broker answers this run (services.ServiceWatch's probe): one passive declare."""
        from protocol import topics

        await self.depths([self._monitor_queue(topics.ALL_HEARTBEATS)])

    async def close(self, timeout: float = 10.0) -> None:
        """Close within ``timeout``: a broker that is down must not hold the run's exit."""
        try:
            await asyncio.wait_for(self.bus.close(), timeout)
        except Exception as exc:  # closing is best effort; the broker drops the connection anyway
            log.warning("bus watch not closed cleanly", error=repr(exc))

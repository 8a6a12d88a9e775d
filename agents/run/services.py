"""`tradebus run` keeps an eye on its own infrastructure: a bounded probe of the broker, Postgres
and InfluxDB every few seconds, recorded in :class:`Outages`.

Every probe runs under ``asyncio.wait_for``: a service that is down, restarting, or accepting TCP
without answering costs one probe's budget, is shown as an outage, and is probed again on the
next round. Nothing here raises into the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from agents.monitor.probes import error_text
from agents.run.outages import Outages
from agents.run.plan import asyncpg_dsn
from infra.logging import get_logger

__all__ = ["POSTGRES", "INFLUXDB", "RABBITMQ", "ServiceWatch"]

log = get_logger(component="run.services")

RABBITMQ = "rabbitmq"
POSTGRES = "postgres"
INFLUXDB = "influxdb"

Probe = Callable[[], Awaitable[None]]


def postgres_probe(database_url: str, timeout: float) -> Probe:
    """Connect to the run's database and SELECT 1 (a fresh connection: reachability, not a pool)."""
    dsn = asyncpg_dsn(database_url)

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout)
        try:
            await connection.fetchval("SELECT 1")
        finally:
            await connection.close(timeout=timeout)

    return probe


def influx_probe(client: httpx.AsyncClient) -> Probe:
    """GET /ping: 204 when InfluxDB serves requests."""

    async def probe() -> None:
        response = await client.get("/ping")
        response.raise_for_status()

    return probe


class ServiceWatch:
    """Probes each named service every ``interval`` seconds in a background task."""

    def __init__(self, probes: dict[str, Probe], outages: Outages, *, interval: float = 2.0, timeout: float = 3.0) -> None:
        self.probes = probes
        self.outages = outages
        self.interval = interval
        self.timeout = timeout
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    async def probe_once(self) -> None:
        """One bounded probe of every service, concurrently; the outages updated."""
        names = list(self.probes)
        results = await asyncio.gather(*(self._probe(name) for name in names))
        for name, error in zip(names, results, strict=True):
            if error is None:
                self.outages.answered(name)
            else:
                self.outages.failed(name, error)
        self.rounds += 1

    async def _probe(self, name: str) -> str | None:
        try:
            await asyncio.wait_for(self.probes[name](), self.timeout)
            return None
        except TimeoutError:
            return f"no answer within {self.timeout:.0f}s"
        except Exception as exc:  # the failure is what is reported
            return error_text(exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="service-watch")

    async def _loop(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:  # never let the watcher die: the panel would lie "all fine"
                log.exception("service probe round failed")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

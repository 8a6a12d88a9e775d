"""The base every agent runs on: settings, JSON logs, the bus, heartbeats, health, shutdown.

An agent subclass keeps its decisions in pure functions and implements only `setup` (subscribe
handlers, open stores) and optionally `teardown` and `health_problems`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import ClassVar

from agents.runtime.health_file import write_health_file
from infra.bus import Bus, PublishFailed, RetryPolicy, Topology, system_topology
from infra.logging import configure_logging, get_logger
from infra.metrics import RESTARTS_ENV, MetricsPortBusy, start_metrics_server
from infra.metrics.catalogue import AGENT_HEALTH, AGENT_HEARTBEATS
from infra.metrics.observe import one_hot
from infra.settings import Settings
from protocol import HealthState, Heartbeat

# Exit code of an agent that cannot start as configured (a busy metrics port): not a crash.
EXIT_MISCONFIGURED = 2


class Agent:
    """Lifecycle: connect → setup → consume and heartbeat until SIGTERM/SIGINT → graceful stop."""

    name: ClassVar[str] = "agent"
    # Agents with their own settings subclass Settings and name the subclass here.
    settings_class: ClassVar[type[Settings]] = Settings

    def __init__(self, settings: Settings, topology: Topology | None = None) -> None:
        self.settings = settings
        self.instance_id = uuid.uuid4().hex[:12]
        self.started_at = datetime.now(UTC)
        self._started_monotonic = time.monotonic()
        self.bus = Bus(
            settings.rabbitmq_url.get_secret_value(),
            topology or system_topology(settings.bus_exchange, settings.bus_partitions),
            connection_name=f"{self.name}-{self.instance_id}",
            publish_timeout=settings.bus_publish_timeout,
            prefetch=settings.bus_prefetch,
            max_attempts=settings.bus_max_attempts,
            quorum=settings.bus_quorum_queues,
            retry_policy=RetryPolicy(
                backoff_initial=settings.bus_retry_backoff_initial,
                backoff_cap=settings.bus_retry_backoff_cap,
                max_crashes=settings.bus_max_crashes,
            ),
            # One file per agent: it must outlive the process (a crash is what it records).
            crash_journal=settings.bus_crash_journal_dir / f"{self.name}.sqlite3",
            instance=settings.agent_instance,
            instances=settings.agent_instances,
            standby_delay=settings.bus_standby_delay,
        )
        self.log = get_logger()
        self._state = HealthState.STARTING
        self._stop = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.exit_code = 0

    # --- to override -----------------------------------------------------------------------
    async def setup(self) -> None:
        """Open stores and subscribe handlers (`await self.bus.consume(...)`)."""

    async def teardown(self) -> None:
        """Close stores; called after consumption stopped and in-flight handlers finished."""

    def health_problems(self) -> list[str]:
        """Reasons the agent is degraded (a store unreachable, ...); empty when healthy."""
        return []

    def heartbeat_detail(self) -> dict[str, str]:
        """Agent-specific figures for the heartbeat (progress, counts)."""
        return {}

    # --- lifecycle -------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def fail(self, reason: str) -> None:
        """Stop the agent with a non-zero exit code (a supervisor restarts it)."""
        self.log.error("agent failed, stopping", reason=reason)
        self.exit_code = 1
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True when the agent is stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        return self._stop.is_set()

    @property
    def health(self) -> HealthState:
        if self._state is not HealthState.HEALTHY:
            return self._state
        return HealthState.DEGRADED if self._problems() else HealthState.HEALTHY

    def _problems(self) -> list[str]:
        return [*self.health_problems(), *self.bus.problems()]

    def heartbeat(self) -> Heartbeat:
        stats = self.bus.stats
        # Keys are at most 64 characters: name the queue without the exchange prefix, which can be
        # long (a per-run exchange of `tradebus run`), and cut as a last resort.
        prefix = f"{self.bus.topology.exchange}."
        detail = {
            f"last_message.{c.queue.removeprefix(prefix)}"[:64]: c.last_message_at.isoformat()
            for c in self.bus.consumers
            if c.last_message_at
        }
        detail.update(self.heartbeat_detail())
        problems = self._problems()
        if problems:
            # A detail value holds at most 1000 characters: several queues retrying through one
            # outage must shorten the list, never make the heartbeat itself invalid.
            joined = "; ".join(problems)
            detail["problems"] = joined if len(joined) <= 1000 else joined[:997] + "..."
        return Heartbeat(
            source=self.name,
            agent=self.name,
            instance_id=self.instance_id,
            started_at=self.started_at,
            uptime_seconds=round(time.monotonic() - self._started_monotonic, 3),
            health=self.health,
            consumed=stats.consumed,
            published=stats.published,
            dead_lettered=stats.dead_lettered,
            errors=stats.errors,
            detail=detail,
        )

    async def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            await self.send_heartbeat()
            await self.sleep_unless_stopped(self.settings.heartbeat_interval)

    async def send_heartbeat(self) -> None:
        beat = self.heartbeat()
        write_health_file(beat)  # for container healthchecks; no-op unless TRADEBUS_HEALTH_FILE is set
        one_hot(AGENT_HEALTH, beat.health.value, (state.value for state in HealthState))
        AGENT_HEARTBEATS.labels(state=beat.health.value).inc()
        try:
            await self.bus.publish(beat)
        except PublishFailed as exc:  # telemetry must not take the agent down
            self.log.warning("heartbeat not published", error=str(exc))

    async def run(self, install_signal_handlers: bool = True) -> None:
        """Run until asked to stop; always shut down gracefully."""
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        self.log.info("starting", instance_id=self.instance_id, trading_mode=self.settings.trading_mode.value)
        await self.bus.connect()
        try:
            await self.setup()
            self._state = HealthState.HEALTHY
            self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name=f"{self.name}-heartbeat")
            self.log.info("running")
            await self._stop.wait()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self.log.info("stopping")
        self._state = HealthState.STOPPING
        self._stop.set()
        await self.bus.stop_consuming()
        if self._heartbeat_task is not None:
            await self._heartbeat_task
        try:
            await self.teardown()
        finally:
            if self.bus.is_connected:
                await self.send_heartbeat()
            await self.bus.close()
            self.log.info("stopped")


def run_agent(agent_cls: type[Agent], settings: Settings | None = None) -> int:
    """Process entry point: configure logs, run the agent until SIGTERM/SIGINT; the exit code."""
    settings = settings or agent_cls.settings_class()
    configure_logging(agent_cls.name, settings.log_level)
    # Metrics belong to the process, not the Agent object: tests run agents in-process by the
    # dozen, and only a real agent process binds a port.
    try:
        server = start_metrics_server(settings, agent_cls.name, restarts=os.environ.get(RESTARTS_ENV))
    except MetricsPortBusy as exc:
        get_logger().error("metrics server not started", error=str(exc))
        print(f"tradebus {agent_cls.name}: {exc}", file=sys.stderr)
        return EXIT_MISCONFIGURED
    if server is not None:
        get_logger().info("metrics served", url=f"http://{server.host}:{server.port}/metrics")
    agent = agent_cls(settings)
    asyncio.run(agent.run())
    return agent.exit_code

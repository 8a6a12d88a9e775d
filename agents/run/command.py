"""`tradebus run`: the whole system on this machine, supervised, watched, and checked at the end.

Steps: decide the run's stores (fresh per replay run, see plan.py) → create and migrate them →
start the bus monitor → start the agents as supervised processes → show progress → when the
replay is fully processed (completion.py): print the final portfolio and the reality check →
stop the agents → exit 0, or the reality check's non-zero code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import aio_pika
import httpx
import structlog
from rich.console import Console
from rich.live import Live

from agents.run.completion import check_completion
from agents.run.console import ConsoleNotStarted, console_spec
from agents.run.display import agent_key, event_text, live_view, portfolio_view, run_console, summary_line
from agents.run.instances import agent_of, instance_env, process_names
from agents.run.outages import Outages
from agents.run.plan import RunPlan, make_plan, new_run_id, prepare_stores
from agents.run.portfolio import read_portfolio
from agents.run.progress import Progress
from agents.run.record import RunRecord
from agents.run.services import INFLUXDB, POSTGRES, RABBITMQ, ServiceWatch, influx_probe, postgres_probe
from agents.run.watch import BusWatch
from agents.runtime.registry import AGENTS, resolve
from agents.runtime.supervisor import (
    BackoffPolicy,
    ProcessSpec,
    ProcessState,
    Supervisor,
    SupervisorEvent,
    agent_command,
)
from infra.bus import delete_topology
from infra.logging import configure_logging, get_logger
from infra.metrics import assign_ports
from infra.settings import DataSource, Settings

log = get_logger(component="run")

# The strategy agent's setting for its config file (issue #4); `--strategies` sets it.
STRATEGIES_ENV = "STRATEGY_CONFIG"
COLLECTOR = "data-collection"
NOTIFIER = "notifier"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_AVAILABLE = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices; None means "as configured" (environment, .env, defaults)."""

    source: DataSource | None = None
    symbols: str | None = None
    timeframe: str | None = None
    speed: str | None = None
    limit: int | None = None
    offset: int | None = None
    strategies: Path | None = None
    follow: bool = False
    fresh: bool | None = None  # None: fresh stores for a replay, the configured ones for an exchange
    agents: tuple[str, ...] = tuple(AGENTS)
    drain_timeout: float = 60.0  # grace for orders without a terminal report once all else is done
    timeout: float | None = None  # give up (exit 1) after this many seconds
    live: bool | None = None  # None: a live panel on a terminal, summary lines otherwise
    keep_runs: int = 3
    log_dir: Path = Path(".tradebus/runs")
    heartbeat_interval: float | None = None  # None: 1 s unless HEARTBEAT_INTERVAL is set
    stop_timeout: float = 20.0
    reality_check: bool = True  # --no-check: for partial runs (--agents) during development
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    probe_interval: float = 2.0  # seconds between probes of the run's services (services.py)
    probe_timeout: float = 3.0  # seconds one probe may take before the service counts as down
    api: bool = True  # --no-api: run without the operator console (agents.run.console)
    # The alert notifier: None starts it only when a target is configured (NOTIFIER_WEBHOOK_URLS,
    # TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID); --notify / --no-notify decide (decision 0019).
    notify: bool | None = None
    # --instances ROLE=N: processes per agent (CLI name → count), 1 when not named (agents.run.instances).
    instances: dict[str, int] = field(default_factory=dict)


def notifier_wanted(notify: bool | None) -> bool:
    """Whether the run starts the alert notifier: as asked, else when it has somewhere to send."""
    if notify is not None:
        return notify
    from agents.notifier.settings import NotifierSettings

    return NotifierSettings().has_targets


def agent_env(options: RunOptions, settings: Settings, environ: dict[str, str]) -> dict[str, str]:
    """The settings every agent of the run gets on top of the inherited environment."""
    source = options.source or settings.data_source
    env = {"DATA_SOURCE": source.value}
    if options.symbols:
        env["SYMBOLS"] = options.symbols
    if options.timeframe:
        env["TIMEFRAME"] = options.timeframe
    if options.speed:
        env["REPLAY_SPEED"] = options.speed
    if options.limit is not None:
        env["REPLAY_LIMIT"] = str(options.limit)
    if options.offset is not None:
        env["REPLAY_OFFSET"] = str(options.offset)
    if options.strategies is not None:
        env[STRATEGIES_ENV] = str(options.strategies.resolve())
    if source is DataSource.REPLAY:
        # The collector exits 0 at the end of the replay unless we keep following.
        env["REPLAY_EXIT_ON_END"] = "false" if options.follow else "true"
    if options.heartbeat_interval is not None:
        env["HEARTBEAT_INTERVAL"] = str(options.heartbeat_interval)
    elif "HEARTBEAT_INTERVAL" not in environ:
        env["HEARTBEAT_INTERVAL"] = "1"  # progress and completion detection within about a second
    return env


def _redirect_logs(path: Path) -> IO[str]:
    """This process's JSON logs go to a file: the terminal belongs to the progress display."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", buffering=1)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    return stream


async def reality_check(settings: Settings, console: Console, *, replay_finished: bool) -> int:
    """Run the reality check against this run's stores and show it; its exit code."""
    from agents.monitor.reality_check import CheckOptions, run_checks
    from agents.monitor.report import render_table

    options = CheckOptions.from_settings(settings, replay_finished=replay_finished)
    report = await run_checks(settings, options)
    render_table(report, console)
    return report.exit_code


async def _delete_run_topology(settings: Settings, watch: BusWatch, console: Console) -> None:
    """Remove a fresh run's exchange and queues, unless a dead-letter queue holds something."""
    dead = await watch.depths([spec.dead_letter_queue for spec in watch.bus.topology.queues])
    kept = {name: n for name, n in dead.items() if n}
    await watch.close()
    if kept:
        console.print(f"bus exchange {settings.bus_exchange} kept for inspection: dead letters in {kept}")
        return
    connection = await aio_pika.connect(settings.rabbitmq_url.get_secret_value(), timeout=10)
    async with connection:
        await delete_topology(await connection.channel(), watch.bus.topology)


class RunSession:
    """One `tradebus run`: owns the plan, the monitor, the supervisor and the terminal."""

    def __init__(self, options: RunOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.progress = Progress()
        self.events: deque[str] = deque(maxlen=6)
        self.waiting_for = "starting"
        self.stop_requested = asyncio.Event()
        self.live_mode = options.live if options.live is not None else console.is_terminal
        self.outages = Outages(on_change=self._note)
        self.record: RunRecord | None = None

    def _note(self, text: str) -> None:
        """One line in the panel's event list (and printed at once in plain output)."""
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        if not self.live_mode:
            # Plain text, one line each: "[run]" and "[Errno 104]" are not rich markup, and a CI log
            # is read (and grepped) line by line.
            self.console.print(f"[run] {text}", markup=False, soft_wrap=True)

    def _on_event(self, event: SupervisorEvent) -> None:
        if event.kind not in ("started", "stopped"):
            self._note(event_text(event))

    def _update_record(self, **changes: object) -> None:
        if self.record is not None:
            try:
                self.record = self.record.updated(self.options.log_dir, **changes)
            except OSError as exc:  # a full disk must not stop the run; the record is a convenience
                log.warning("run record not updated", error=str(exc))

    async def execute(self) -> int:
        options = self.options
        base = Settings()
        run_id = new_run_id()
        source = options.source or base.data_source
        fresh = options.fresh if options.fresh is not None else source is DataSource.REPLAY
        plan = make_plan(base, fresh=fresh, run_id=run_id, env=agent_env(options, base, dict(os.environ)))
        settings = plan.settings()
        log_dir = options.log_dir / run_id
        log_stream = _redirect_logs(log_dir / "run.log")
        self.record = RunRecord.of(plan, source.value)
        self.record.write(options.log_dir)
        code = EXIT_FAILED
        try:
            code = await self._execute(plan, settings, log_dir)
            return code
        finally:
            self._update_record(finished_at=datetime.now(UTC).isoformat(), exit_code=code)
            configure_logging("run", base.log_level)  # back to stderr before the file closes
            log_stream.close()

    async def _execute(self, plan: RunPlan, settings: Settings, log_dir: Path) -> int:
        console, options = self.console, self.options
        for key, value in plan.describe():
            console.print(f"[bold]{key:>12}[/] {value}")
        console.print(f"[bold]{'mode':>12}[/] {settings.trading_mode.value}, source {settings.data_source.value}, "
                      f"symbols {','.join(settings.symbols)} {settings.timeframe}, speed {settings.replay_speed}, "
                      f"limit {settings.replay_limit or 'all'}")
        console.print(f"[bold]{'logs':>12}[/] {log_dir}/")
        api = None
        if options.api:  # before anything starts: a busy port or missing tokens end the run at once
            try:
                api = console_spec(settings, plan.env, log_dir)
            except ConsoleNotStarted as exc:
                console.print(f"tradebus run: {exc}", markup=False, soft_wrap=True)
                return EXIT_FAILED
            for key, value in api.describe():  # one line, never wrapped: a URL and a path to copy
                console.print(f"[bold]{key:>12}[/] {value}", soft_wrap=True)
        revision = await prepare_stores(plan, Settings(), options.keep_runs)
        console.print(f"[bold]{'migrated':>12}[/] revision {revision}")

        watch = BusWatch(settings, self.progress)
        await watch.start()
        influx = httpx.AsyncClient(base_url=settings.influxdb_url, timeout=options.probe_timeout)
        services = ServiceWatch(
            {RABBITMQ: watch.probe, POSTGRES: postgres_probe(plan.database_url, options.probe_timeout),
             INFLUXDB: influx_probe(influx)},
            self.outages,
            interval=options.probe_interval,
            timeout=options.probe_timeout,
        )
        services.start()
        entries = [resolve(name) for name in options.agents]
        notifier = notifier_wanted(options.notify)
        processes = [(name, e) for e in entries for name in process_names(e, options.instances.get(e.cli_name, 1))]
        # A second instance's metrics role is its own name, so it gets a port of its own.
        roles = {name: e.package.rsplit(".", 1)[1] + name.removeprefix(e.cli_name) for name, e in processes}
        if api is not None:
            roles[api.spec.name] = "api"
        if notifier:
            roles[NOTIFIER] = NOTIFIER
        ports = self._metrics_ports(roles, settings)
        specs = [
            ProcessSpec(name, agent_command(e.package),
                        env={**plan.env, **ports.get(name, {}), **instance_env(name, options.instances.get(e.cli_name, 1))},
                        log_path=log_dir / f"{name.replace('#', '.')}.log")
            for name, e in processes
        ]
        if api is not None:
            specs.append(replace(api.spec, env={**api.spec.env, **ports.get(api.spec.name, {})}))
        if notifier:
            specs.append(ProcessSpec(NOTIFIER, agent_command("agents.notifier"), env={**plan.env, **ports.get(NOTIFIER, {})},
                                     log_path=log_dir / f"{NOTIFIER}.log"))
        supervisor = Supervisor(specs, policy=options.backoff, stop_timeout=options.stop_timeout, on_event=self._on_event)
        consumers = {e.package.rsplit(".", 1)[1] for e in entries}
        work_queues = [spec.name for spec in watch.work_queues if spec.consumer in consumers]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        code = EXIT_FAILED
        try:
            await supervisor.start()
            code = await self._watch_until_done(supervisor, watch, work_queues, settings)
            await services.close()
            if code in (EXIT_OK, EXIT_INTERRUPTED):
                await self._final_report(plan, settings, code)
                if options.reality_check and (code == EXIT_OK or options.follow):
                    code = await reality_check(settings, console, replay_finished=not options.follow)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            console.print(f"stopping {len(specs)} agents ...")
            await services.close()
            await supervisor.stop()
            if plan.fresh:
                try:
                    await asyncio.wait_for(_delete_run_topology(settings, watch, console), 30)
                except Exception as exc:  # a broker that is gone keeps the topology: say so, exit anyway
                    console.print(f"bus exchange {settings.bus_exchange} not removed: {exc!r}")
            await watch.close()
            await influx.aclose()
        outages = f"; service outages ridden out: {self.outages.total}" if self.outages.total else ""
        console.print(f"agent restarts: {supervisor.total_restarts}{outages}; exit code {code}")
        return code

    def _metrics_ports(self, roles: dict[str, str], settings: Settings) -> dict[str, dict[str, str]]:
        """Each process's own METRICS_PORT (its role's default, or a free one), shown in the header;
        METRICS_PORT=0 turns metrics off for the whole run. ``roles``: process name → role."""
        if settings.metrics_port == 0:
            self.console.print(f"[bold]{'metrics':>12}[/] off (METRICS_PORT=0)")
            return {}
        ports = assign_ports(roles.values(), settings.metrics_host)
        shown = ", ".join(f"{name} :{ports[role]}" for name, role in roles.items())
        self.console.print(f"[bold]{'metrics':>12}[/] http://{settings.metrics_host}:PORT/metrics — {shown}")
        self._update_record(metrics={name: ports[role] for name, role in roles.items()})
        return {name: {"METRICS_PORT": str(ports[role])} for name, role in roles.items()}

    async def _watch_until_done(
        self, supervisor: Supervisor, watch: BusWatch, work_queues: list[str], settings: Settings
    ) -> int:
        options = self.options
        started = time.monotonic()
        quiet_needed = 2 * settings.heartbeat_interval + 0.5
        grace_started: float | None = None
        follow = options.follow or settings.data_source is not DataSource.REPLAY
        header = f"tradebus run — {'following (Ctrl-C to stop)' if follow else 'replay'}"
        last_line = 0.0
        live = Live(console=self.console, refresh_per_second=4, transient=False) if self.live_mode else None
        with live if live is not None else contextlib.nullcontext():
            while True:
                now = time.monotonic()
                statuses = supervisor.status
                missing = [n for n, s in statuses.items() if s.state is ProcessState.NOT_AVAILABLE]
                if missing:
                    self.console.print(f"[red]not built yet: {', '.join(missing)}; `tradebus run` needs every agent "
                                       f"(or choose some with --agents). Stopping.[/]")
                    return EXIT_NOT_AVAILABLE
                if self.stop_requested.is_set():
                    self.waiting_for = "interrupted"
                    return EXIT_INTERRUPTED
                if not follow:
                    collector = statuses.get(COLLECTOR)
                    collector_done = collector is None or collector.state is ProcessState.DONE
                    if collector_done and self.record is not None and not self.record.replay_finished:
                        self._update_record(replay_finished=True)
                    running = [agent_key(n) for n, s in statuses.items()
                               if n != COLLECTOR and agent_of(n) in AGENTS and s.state is ProcessState.RUNNING]  # not the console
                    depths = await self.queue_depths(watch, work_queues) if collector_done else {}
                    verdict = check_completion(
                        collector_done=collector_done,
                        depths=depths,
                        progress=self.progress,
                        running_agents=running,
                        quiet_needed=quiet_needed,
                        now=now,
                        open_orders_grace_over=grace_started is not None and now - grace_started >= options.drain_timeout,
                        outages=self.outages.describe(now),
                        recovered_for=self.outages.recovered_for(now),
                    )
                    if verdict.waiting_for.endswith("without a terminal report") and grace_started is None:
                        grace_started = now
                    self.waiting_for = verdict.waiting_for
                    if verdict.finished:
                        if self.progress.open_orders:
                            self.waiting_for += f" ({len(self.progress.open_orders)} orders still open)"
                        self._show(live, supervisor, header, force_line=True)
                        return EXIT_OK
                else:
                    self.waiting_for = "; ".join(self.outages.describe(now)) or "following"
                if options.timeout is not None and now - started > options.timeout:
                    self.console.print(f"[red]timed out after {options.timeout:.0f}s; still waiting for: {self.waiting_for}[/]")
                    return EXIT_FAILED
                if live is not None or now - last_line >= 5:
                    self._show(live, supervisor, header)
                    last_line = now
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), 0.5)

    async def queue_depths(self, watch: BusWatch, queues: list[str]) -> dict[str, int]:
        """Work queue depths, bounded; while the broker cannot be asked, the outage is recorded and
        a placeholder depth keeps the verdict at "not finished"."""
        try:
            depths = await asyncio.wait_for(watch.depths(queues), self.options.probe_timeout)
        except Exception as exc:
            self.outages.failed(RABBITMQ, f"no queue depth: {exc!r}"[:200])
            return {"(broker unreachable)": 1}
        self.outages.answered(RABBITMQ)
        return depths

    def _show(self, live: Live | None, supervisor: Supervisor, header: str, force_line: bool = False) -> None:
        outages = self.outages.describe()
        if live is not None:
            live.update(live_view(self.progress, supervisor.status, self.events, self.waiting_for, header, outages),
                        refresh=True)
        else:
            self.console.print(summary_line(self.progress, supervisor.status, self.waiting_for), markup=False, soft_wrap=True)

    async def _final_report(self, plan: RunPlan, settings: Settings, code: int) -> None:
        title = "final portfolio" if code == EXIT_OK else "portfolio when interrupted"
        self.console.rule(title)
        try:
            portfolio = await asyncio.wait_for(read_portfolio(plan.database_url), 30)
        except Exception as exc:  # the report must not hide the reality check
            self.console.print(f"[red]could not read the ledger: {exc}[/]")
            return
        self.console.print(portfolio_view(portfolio, self.progress))


def run_command(options: RunOptions) -> int:
    """Entry point for the CLI: configure logs, run, return the exit code."""
    configure_logging("run", Settings().log_level)
    console = run_console()
    try:
        return asyncio.run(RunSession(options, console).execute())
    except KeyboardInterrupt:  # before the signal handlers were installed
        return EXIT_INTERRUPTED
    except Exception as exc:
        console.print(f"[red]tradebus run failed: {exc}[/]")
        log.exception("run failed")
        print(f"tradebus run failed: {exc!r}", file=sys.stderr)
        return EXIT_FAILED

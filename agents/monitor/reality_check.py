"""`tradebus reality-check`: does what the system says it did match what actually happened?

Each check is PASS, WARN or FAIL with its figure. The exit code is 1 when anything FAILs, so a
script (or `tradebus run` at the end of a replay) can act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from rich.console import Console

from agents.monitor.bus_checks import EXPECTED_AGENTS, bus_checks
from agents.monitor.probes import PROBE_TIMEOUT, bounded, log_to_stderr
from agents.monitor.report import Report, render_table
from agents.monitor.store_checks import ledger_checks, price_checks
from infra.bus import system_topology
from infra.db import create_engine
from infra.influx import InfluxPriceStore
from infra.settings import DataSource, Settings, redact_url
from protocol import timeframe_seconds

__all__ = ["CheckOptions", "main", "run_checks"]


@dataclass(frozen=True)
class CheckOptions:
    """Thresholds; the defaults derive from the settings the agents run with."""

    heartbeat_wait: float
    heartbeat_max_age: float
    max_queue_depth: int
    order_grace: timedelta
    price_max_age: timedelta | None
    # The agents that must be heard; a replay that ended leaves data collection legitimately gone.
    expected_agents: tuple[str, ...] = EXPECTED_AGENTS
    # Seconds each service gets to answer one probe (connect included); see probes.py.
    probe_timeout: float = PROBE_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Settings, *, replay_finished: bool = False) -> CheckOptions:
        interval = settings.heartbeat_interval
        live_prices = settings.data_source is DataSource.EXCHANGE
        return cls(
            # Two beats' time: one may have just been missed.
            heartbeat_wait=2 * interval + 1,
            heartbeat_max_age=3 * interval + 1,
            max_queue_depth=settings.max_backlog,
            order_grace=timedelta(seconds=60),
            price_max_age=timedelta(seconds=3 * timeframe_seconds(settings.timeframe)) if live_prices else None,
            expected_agents=tuple(a for a in EXPECTED_AGENTS if not (replay_finished and a == "data_collection")),
        )


async def run_checks(settings: Settings, options: CheckOptions | None = None) -> Report:
    """Run every check once; unreachable, silent or missing services become FAIL rows, never
    exceptions or hangs: each group ends within its budget (see probes.py)."""
    options = options or CheckOptions.from_settings(settings)
    budget = options.probe_timeout
    database_url = settings.database_url.get_secret_value()
    # asyncpg's own connect timeout and a statement timeout: a silent Postgres ends the probe too.
    engine = create_engine(
        database_url, connect_args={"timeout": budget, "command_timeout": budget}, pool_pre_ping=False
    )
    token = settings.influxdb_token.get_secret_value() if settings.influxdb_token else None
    store = InfluxPriceStore(settings.influxdb_url, settings.influxdb_database, token, timeout=budget, max_attempts=1)
    queues = len(system_topology(settings.bus_exchange, settings.bus_partitions).queues)
    try:
        groups = await asyncio.gather(
            bounded(
                bus_checks(
                    settings.rabbitmq_url.get_secret_value(),
                    system_topology(settings.bus_exchange, settings.bus_partitions),
                    heartbeat_wait=options.heartbeat_wait,
                    heartbeat_max_age=options.heartbeat_max_age,
                    max_depth=options.max_queue_depth,
                    expected_agents=options.expected_agents,
                    connect_timeout=budget,
                ),
                group="broker",
                name="probe",
                # connect, the heartbeat window, then a handful of quick passive declares per queue
                budget=2 * budget + options.heartbeat_wait + 0.5 * queues,
                hint=f"is RabbitMQ running at {redact_url(settings.rabbitmq_url.get_secret_value())}? (RABBITMQ_URL)",
            ),
            bounded(
                price_checks(store, settings.exchange, settings.symbols, settings.timeframe, max_age=options.price_max_age),
                group="prices",
                name="probe",
                budget=budget * (1 + len(settings.symbols)),
                hint=f"is InfluxDB running at {redact_url(settings.influxdb_url)}? (INFLUXDB_URL)",
            ),
            bounded(
                ledger_checks(engine, order_grace=options.order_grace),
                group="ledger",
                name="database",
                budget=3 * budget,
                hint=f"is Postgres running at {redact_url(database_url)}? (DATABASE_URL)",
            ),
        )
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.close(), budget)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.dispose(), budget)
    return Report.of(groups)


async def _watch(
    settings: Settings, as_json: bool, interval: float | None, console: Console, options: CheckOptions | None
) -> int:
    """Once, or every ``interval`` seconds until Ctrl-C: each round probes afresh (new
    connections), so a broker or database restart shows as FAIL rows and then clears."""
    while True:
        report = await run_checks(settings, options)
        if as_json:
            print(report.to_json(), flush=True)
        else:
            render_table(report, console)
        if interval is None:
            return report.exit_code
        await asyncio.sleep(interval)


def main(
    as_json: bool = False,
    watch: float | None = None,
    settings: Settings | None = None,
    options: CheckOptions | None = None,
) -> int:
    """Entry point of `tradebus reality-check` and scripts/reality_check.py; returns the exit code."""
    console = Console(stderr=as_json)
    # Logs are JSON lines on stderr: stdout carries only the report (--json is parsed by machines).
    log_to_stderr("reality-check", (settings or Settings()).log_level)
    try:
        return asyncio.run(_watch(settings or Settings(), as_json, watch, console, options))
    except KeyboardInterrupt:
        return 130

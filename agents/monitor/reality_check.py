"""`tradebus reality-check`: does what the system says it did match what actually happened?

Each check is PASS, WARN or FAIL with its figure. The exit code is 1 when anything FAILs, so a
script (or `tradebus run` at the end of a replay) can act on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from rich.console import Console

from agents.monitor.bus_checks import EXPECTED_AGENTS, bus_checks
from agents.monitor.report import Report, render_table
from agents.monitor.store_checks import ledger_checks, price_checks
from infra.bus import system_topology
from infra.db import create_engine
from infra.influx.store import from_settings as influx_store_from_settings
from infra.settings import DataSource, Settings
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
    """Run every check once; unreachable services become FAIL rows, never exceptions."""
    options = options or CheckOptions.from_settings(settings)
    engine = create_engine(settings.database_url.get_secret_value())
    store = influx_store_from_settings(settings)
    try:
        groups = await asyncio.gather(
            bus_checks(
                settings.rabbitmq_url.get_secret_value(),
                system_topology(settings.bus_exchange),
                heartbeat_wait=options.heartbeat_wait,
                heartbeat_max_age=options.heartbeat_max_age,
                max_depth=options.max_queue_depth,
                expected_agents=options.expected_agents,
            ),
            price_checks(
                store, settings.exchange, settings.symbols, settings.timeframe, max_age=options.price_max_age
            ),
            ledger_checks(engine, order_grace=options.order_grace),
        )
    finally:
        await store.close()
        await engine.dispose()
    return Report.of(groups)


async def _watch(settings: Settings, as_json: bool, interval: float | None, console: Console) -> int:
    while True:
        report = await run_checks(settings)
        if as_json:
            print(report.to_json(), flush=True)
        else:
            render_table(report, console)
        if interval is None:
            return report.exit_code
        await asyncio.sleep(interval)


def main(as_json: bool = False, watch: float | None = None, settings: Settings | None = None) -> int:
    """Entry point of `tradebus reality-check` and scripts/reality_check.py; returns the exit code."""
    console = Console(stderr=as_json)
    try:
        return asyncio.run(_watch(settings or Settings(), as_json, watch, console))
    except KeyboardInterrupt:
        return 130

"""Terminal views of a run: the live progress panel, one-line summaries, the final portfolio."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from agents.run.instances import agent_of
from agents.run.portfolio import Portfolio
from agents.run.progress import Progress, SymbolCounts
from agents.runtime.supervisor import ProcessState, ProcessStatus, SupervisorEvent, describe_exit
from protocol import HealthState

_STATE_STYLE = {
    ProcessState.RUNNING: "green",
    ProcessState.DONE: "cyan",
    ProcessState.BACKOFF: "yellow",
    ProcessState.NOT_AVAILABLE: "red",
    ProcessState.STOPPED: "dim",
}


# Width when stdout is not a terminal (a CI log, a pipe, a file): rich would assume 80 columns
# and cut the tables' cells ("BTC/U…"); a log reader scrolls sideways instead. COLUMNS wins.
PIPE_WIDTH = 220


def run_console(file: IO[str] | None = None) -> Console:
    """The run's console: the terminal's width on a terminal, PIPE_WIDTH (or COLUMNS) otherwise."""
    console = Console(file=file)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(file=file, width=PIPE_WIDTH)


def degraded_reason(progress: Progress, agent: str) -> str | None:
    """Why an agent's latest heartbeat says DEGRADED (its ``problems`` detail); None if healthy."""
    view = progress.agents.get(agent)
    if view is None or view.heartbeat.health is not HealthState.DEGRADED:
        return None
    return view.heartbeat.detail.get("problems") or "no reason reported"


def _degraded_line(progress: Progress) -> str:
    found = [f"{name} ({reason})" for name in sorted(progress.agents) if (reason := degraded_reason(progress, name))]
    return f" | DEGRADED: {'; '.join(found)}" if found else ""


def _money(value: Decimal | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:,.{places}f}"


def agent_key(process_name: str) -> str:
    """Supervisor process names are CLI names (risk-manager, risk-manager#2 for a second
    instance); heartbeats use package names."""
    return agent_of(process_name).replace("-", "_")


def candles_line(progress: Progress) -> str:
    stored = progress.detail("data_collection", "candles_stored") or "0"
    published = progress.detail("data_collection", "candles_published") or "0"
    position = progress.detail("data_collection", "progress") or "-"
    return f"{published} published ({position}), {stored} stored"


def indicators_line(progress: Progress) -> str:
    ta = progress.agents.get("technical_analysis")
    if ta is None:
        return "-"
    snapshots = ta.heartbeat.detail.get("snapshots_published")
    return f"{snapshots} snapshots" if snapshots is not None else f"{ta.heartbeat.consumed} candles analysed"


def symbols_part(progress: Progress) -> str:
    """Fills per symbol, once a run has seen more than one symbol ("" otherwise)."""
    if len(progress.symbols) < 2:
        return ""
    return " (" + ", ".join(f"{symbol} {counts.fills}" for symbol, counts in sorted(progress.symbols.items())) + ")"


def _published_by_symbol(progress: Progress) -> dict[str, str]:
    """Candles published per symbol, from the collector's heartbeat (``published.<symbol>`` keys,
    sent when it replays several symbols)."""
    view = progress.agents.get("data_collection")
    detail = view.heartbeat.detail if view else {}
    return {key.removeprefix("published."): value for key, value in detail.items() if key.startswith("published.")}


def symbols_table(progress: Progress) -> Table | None:
    """One row per symbol (candles, signals, orders, fills, notional, realised PnL) when there are several."""
    published = _published_by_symbol(progress)
    symbols = sorted(set(published) | set(progress.symbols))
    if len(symbols) < 2:
        return None
    table = Table(title="symbols", title_justify="left")
    for column in ("symbol", "candles", "signals", "orders", "fills", "notional", "realised PnL"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for symbol in symbols:
        counts = progress.symbols.get(symbol) or SymbolCounts()
        table.add_row(symbol, published.get(symbol, "-"), str(counts.signals), str(counts.orders), str(counts.fills),
                      _money(counts.filled_notional), _money(progress.realised_pnl_of(symbol)))
    return table


def summary_line(progress: Progress, statuses: dict[str, ProcessStatus], waiting_for: str) -> str:
    """One line for non-interactive output (CI logs, pipes)."""
    restarts = sum(s.restarts for s in statuses.values())
    equity = progress.metrics.equity if progress.metrics else None
    return (
        f"[run] candles {candles_line(progress)} | indicators {indicators_line(progress)} | "
        f"signals {sum(progress.signals.values())} | orders {len(progress.orders)} (open {len(progress.open_orders)}) | "
        f"fills {progress.fills}{symbols_part(progress)} | rejections {sum(progress.rejections.values())} | "
        f"equity {_money(equity)} | restarts {restarts} | {waiting_for}{_degraded_line(progress)}"
    )


def live_view(
    progress: Progress,
    statuses: dict[str, ProcessStatus],
    events: deque[str],
    waiting_for: str,
    header: str,
    outages: Sequence[str] = (),
) -> RenderableType:
    """The panel: agents, pipeline counts, the run's status, services that are down, recent events."""
    agents = Table(title="agents", expand=True, title_justify="left")
    for column in ("agent", "process", "pid", "restarts", "health", "consumed", "published", "dead-lettered", "errors"):
        agents.add_column(column, justify="left" if column in ("agent", "process", "health") else "right")
    for name, status in statuses.items():
        view = progress.agents.get(agent_key(name))
        beat = view.heartbeat if view else None
        state = Text(str(status.state), style=_STATE_STYLE.get(status.state, ""))
        health = Text(beat.health.value if beat else "-")
        if (reason := degraded_reason(progress, agent_key(name))) is not None:
            health = Text(f"DEGRADED: {reason}", style="yellow")
        if status.state is ProcessState.BACKOFF and status.next_start_in is not None:
            state.append(f" ({status.next_start_in:.0f}s)")
        agents.add_row(
            name,
            state,
            str(status.pid or "-"),
            str(status.restarts),
            health,
            str(beat.consumed) if beat else "-",
            str(beat.published) if beat else "-",
            str(beat.dead_lettered) if beat else "-",
            str(beat.errors) if beat else "-",
        )
    pipeline = Table.grid(padding=(0, 2))
    pipeline.add_column(style="bold")
    pipeline.add_column()
    metrics = progress.metrics
    signals = ", ".join(f"{side} {n}" for side, n in sorted(progress.signals.items())) or "0"
    rejections = ", ".join(f"{reason} {n}" for reason, n in progress.rejections.most_common()) or "0"
    pipeline.add_row("candles", candles_line(progress))
    pipeline.add_row("indicators", indicators_line(progress))
    pipeline.add_row("signals", signals)
    pipeline.add_row("orders", f"{len(progress.orders)} (without terminal report: {len(progress.open_orders)})")
    pipeline.add_row("fills", f"{progress.fills} (notional {_money(progress.filled_notional)}, fees {_money(progress.fees, 4)})")
    pipeline.add_row("rejections", rejections)
    pipeline.add_row("realised PnL", _money(progress.realised_pnl))
    if metrics is not None:
        pipeline.add_row(
            "equity",
            f"{_money(metrics.equity)} {metrics.quote_asset}  drawdown {metrics.drawdown:.2%}  "
            f"{metrics.trading_state.value}  {metrics.warning_level.value}",
        )
    if progress.gaps:
        pipeline.add_row("data gaps", str(progress.gaps))
    pipeline.add_row("status", waiting_for)
    parts: list[RenderableType] = [Text(header, style="bold"), agents, pipeline]
    if (by_symbol := symbols_table(progress)) is not None:
        parts.append(by_symbol)
    if outages:
        parts.append(Text("\n".join(f"OUTAGE {line}" for line in outages), style="bold red"))
    if events:
        parts.append(Text("\n".join(events), style="yellow"))
    return Group(*parts)


def event_text(event: SupervisorEvent) -> str:
    """A supervisor event for people: 'execution crashed (killed by SIGKILL), restart 1 in 1s'."""
    if event.kind == "restarting":
        return f"{event.name}: restart {event.restarts} in {event.delay:.1f}s"
    if event.exit_code is not None:
        return f"{event.name} {event.kind} ({describe_exit(event.exit_code)})"
    return f"{event.name} {event.kind}"


def portfolio_view(portfolio: Portfolio, progress: Progress) -> RenderableType:
    parts: list[RenderableType] = []
    for dump in portfolio.tables:
        table = Table(title=dump.name, title_justify="left")
        for column in dump.columns:
            table.add_column(column)
        for row in dump.rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        if not dump.rows:
            table.caption = "empty"
        parts.append(table)
    if (by_symbol := symbols_table(progress)) is not None:
        parts.append(by_symbol)
    lines = []
    pnl = portfolio.realised_pnl
    lines.append(f"realised PnL (ledger): {_money(pnl)}" if pnl is not None else f"realised PnL (bus): {_money(progress.realised_pnl)}")
    if progress.metrics is not None:
        lines.append(f"equity: {_money(progress.metrics.equity)} {progress.metrics.quote_asset}")
    if portfolio.counts:
        lines.append("rows: " + ", ".join(f"{name} {count}" for name, count in portfolio.counts.items()))
    if portfolio.missing:
        lines.append(f"not in the database yet: {', '.join(portfolio.missing)} (the ledger migration has not created them)")
    parts.append(Text("\n".join(lines)))
    return Group(*parts)

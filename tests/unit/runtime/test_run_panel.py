"""The `tradebus run` panel: an agent's DEGRADED reason is shown, and without a terminal the
tables are printed at full width instead of being cut at rich's default 80 columns."""

from __future__ import annotations

from collections import deque
from io import StringIO

import pytest
from rich.console import Console

from agents.run.display import live_view, portfolio_view, run_console, summary_line
from agents.run.portfolio import Portfolio, TableDump
from agents.run.progress import Progress
from agents.runtime.supervisor import ProcessState, ProcessStatus
from protocol import HealthState
from tests.unit.runtime.test_supervisor_run import beat

REASON = "execution refused 1 order(s) without a matching reservation; last tb-0123 from strategy 'forged'"


def _progress() -> Progress:
    progress = Progress()
    progress.record(beat("risk_manager", 3))
    progress.record(beat("execution", 5).model_copy(update={"health": HealthState.DEGRADED, "detail": {"problems": REASON}}))
    return progress


def test_the_panel_and_the_summary_line_show_each_degraded_agents_reason() -> None:
    statuses = {name: ProcessStatus(name, state=ProcessState.RUNNING, pid=1) for name in ("risk-manager", "execution")}
    out = StringIO()
    progress = _progress()
    Console(file=out, width=400).print(live_view(progress, statuses, deque(), "waiting", "tradebus run"))
    panel = out.getvalue()
    assert f"DEGRADED: {REASON}" in panel
    assert "HEALTHY" in panel  # the healthy agent keeps its plain state
    line = summary_line(progress, statuses, "waiting")
    assert line.endswith(f"| DEGRADED: execution ({REASON})")


def test_without_a_terminal_tables_are_not_cut_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    out = StringIO()  # not a terminal, like a pipe or a CI log
    console = run_console(out)
    assert not console.is_terminal
    long_id = "breakout-momentum-btc-usdt-15m-with-a-long-strategy-name"
    row = (long_id, "binance", "BTC/USDT", "0.02122000", "47123.456789", "-12.3456789", "0.987654")
    table = TableDump("positions", ("strategy_id", "exchange", "symbol", "quantity", "average entry", "realised pnl", "fees"), (row,))
    console.print(portfolio_view(Portfolio(tables=[table]), Progress()))
    printed = out.getvalue()
    assert "…" not in printed
    [line] = [text for text in printed.splitlines() if long_id in text]
    assert all(value in line for value in row) and len(line) > 80

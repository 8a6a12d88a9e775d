"""The `tradebus run` panel: an agent's DEGRADED reason is shown, and without a terminal the
tables are printed at full width instead of being cut at rich's default 80 columns."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
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


def cells(row: str) -> list[str]:
    """The cells of one printed table row."""
    return [cell.strip() for cell in row.split("│") if cell.strip()]


def _two_symbol_progress() -> Progress:
    """Signals, orders and fills of BTC/USDT and NFLX/USDT, one fill of BTC delivered twice."""
    from uuid import uuid4

    from protocol import ExecutionReport, OrderRequest, PositionUpdate, Signal, client_order_id_for
    from tests.unit.test_protocol_samples import order_fields, report_fields, sample

    progress = Progress()
    progress.record(beat("data_collection", 0, **{"published.BTC/USDT": "60", "published.NFLX/USDT": "41"}))
    for symbol, price, quantity in (("BTC/USDT", "42000", "0.1"), ("NFLX/USDT", "500", "2"), ("NFLX/USDT", "510", "1")):
        signal = sample(Signal).model_copy(update={"message_id": uuid4(), "symbol": symbol})
        coid = client_order_id_for(signal.message_id)
        progress.record(signal)
        progress.record(OrderRequest(**order_fields(signal_id=signal.message_id, client_order_id=coid, symbol=symbol)))
        report = ExecutionReport(**report_fields(client_order_id=coid, symbol=symbol, status="FILLED", quantity=quantity,
                                                 cumulative_filled_quantity=quantity, last_fill_quantity=quantity,
                                                 last_fill_price=price, average_price=price))
        progress.record(report)
        progress.record(report)  # a redelivery is counted once
    progress.record(sample(PositionUpdate).model_copy(update={"symbol": "NFLX/USDT", "realised_pnl": Decimal("7.5")}))
    return progress


def test_the_panel_the_summary_and_the_final_report_show_one_row_per_symbol() -> None:
    progress = _two_symbol_progress()
    assert {s: (c.signals, c.orders, c.fills, c.filled_notional) for s, c in progress.symbols.items()} == {
        "BTC/USDT": (1, 1, 1, Decimal("4200.0")),
        "NFLX/USDT": (2, 2, 2, Decimal("1510")),
    }
    statuses = {"execution": ProcessStatus("execution", state=ProcessState.RUNNING, pid=1)}
    out = StringIO()
    console = Console(file=out, width=200)
    console.print(live_view(progress, statuses, deque(), "waiting", "tradebus run"))
    console.print(portfolio_view(Portfolio(), progress))
    rows = [line for line in out.getvalue().splitlines() if "NFLX/USDT" in line]
    assert len(rows) == 2  # the panel's row and the final report's
    assert [cells(row) for row in rows] == [["NFLX/USDT", "41", "2", "2", "2", "1,510.00", "7.50"]] * 2
    assert "fills 3 (BTC/USDT 1, NFLX/USDT 2) |" in summary_line(progress, statuses, "waiting")


def test_the_symbols_table_shows_candles_before_the_first_signal() -> None:
    progress = Progress()
    progress.record(beat("data_collection", 0, **{"published.BTC/USDT": "3", "published.NFLX/USDT": "2"}))
    out = StringIO()
    Console(file=out, width=200).print(live_view(progress, {}, deque(), "waiting", "tradebus run"))
    [row] = [line for line in out.getvalue().splitlines() if "NFLX/USDT" in line]
    assert cells(row) == ["NFLX/USDT", "2", "0", "0", "0", "0.00", "0.00"]


def test_one_symbol_keeps_the_panel_without_a_symbols_table() -> None:
    progress = _progress()
    out = StringIO()
    Console(file=out, width=200).print(live_view(progress, {}, deque(), "waiting", "tradebus run"))
    assert "symbols" not in out.getvalue()

"""The result document (JSON), the equity and drawdown plot (PNG) and the terminal tables.

Document ``tradebus.backtest/1``: ``config`` (strategy, parameters, indicator parameters,
market, data, window, costs, sizing, market rules), ``execution_model`` (how signals become
fills, in words), ``metrics`` (fractions; see ``metrics.py`` for every formula), ``trades``
(Decimal values as strings), ``signals`` (what a live strategy agent would have published),
``rejections`` and the ``equity_curve`` (time, equity, drawdown per point: the starting cash at
the window's first open, then each candle close). A grid document holds the ranking and the
full document of the best run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from agents.backtest.data import describe_refusals
from agents.backtest.engine import EXECUTION_MODEL, BacktestResult, Fill, Trade
from agents.backtest.metrics import drawdown_series
from agents.backtest.runs import RunSpec
from agents.data_collection.replay import CleaningReport
from protocol import timeframe_seconds

__all__ = [
    "CLOSE_RULE",
    "EXECUTION_RULE",
    "execution_rule",
    "rejection_table",
    "SCHEMA",
    "cleaning_lines",
    "format_params",
    "grid_document",
    "grid_table",
    "plot_equity",
    "result_document",
    "save_document",
    "summary_table",
]

SCHEMA = "tradebus.backtest/1"
# EXECUTION_MODEL in a few words, under every summary table.
EXECUTION_RULE = "signal at close t → fill at open t+1"
CLOSE_RULE = "signal at close t → fill at close t (as the live replay)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fill(fill: Fill) -> dict[str, Any]:
    quote = fill.quote
    return {
        "signal_bar": fill.signal_bar,
        "bar": fill.bar,
        "time": _iso(fill.time),
        "price": str(quote.price),
        "quantity": str(quote.quantity),
        "notional": str(quote.notional),
        "fee": str(quote.fee),
        "fee_currency": quote.fee_currency,
        "reason": fill.reason,
        "exit_reason": fill.exit_reason,
    }


def _trade(trade: Trade) -> dict[str, Any]:
    pnl, ret = trade.pnl, trade.return_pct
    return {
        "entry": _fill(trade.entry),
        "exit": _fill(trade.exit) if trade.exit is not None else None,
        "adds": [_fill(f) for f in trade.adds],
        # Which exit closed the trade: SIGNAL (the strategy's SELL) or a protective exit.
        "exit_reason": trade.exit_reason,
        "pnl": str(pnl) if pnl is not None else None,
        "return": float(ret) if ret is not None else None,
    }


def _fills(result: BacktestResult) -> list[Fill]:
    return [f for t in result.trades for f in (t.entry, *t.adds, t.exit) if f is not None]


def _clean(value: Any) -> Any:
    """NaN/inf cannot be JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def equity_times(result: BacktestResult) -> list[datetime]:
    """When each equity point was marked: the first window open, then every window close."""
    bars = result.window.bars
    step = timeframe_seconds(bars.timeframe) * 1000
    opens = bars.open_time[result.window.first :]
    if len(opens) == 0:
        return []
    marks = np.r_[opens[0], opens + step]
    return [_EPOCH + timedelta(milliseconds=int(ms)) for ms in marks]


def _config(result: BacktestResult, spec: RunSpec | None, live_window: bool) -> dict[str, Any]:
    window, bars = result.window, result.window.bars
    traded = bars.candles[window.first :]
    choice = spec.choice if spec is not None else None
    return {
        "strategy": {
            "name": choice.name if choice else result.strategy.kind,
            "strategy_id": choice.strategy_id if choice else None,
            "kind": choice.kind if choice else result.strategy.kind,  # a user strategy: its reference
            "params": result.strategy.params.model_dump(mode="json"),
            "overrides": spec.overrides if spec is not None else {},
        },
        "indicator_params": result.indicator_params.model_dump(mode="json"),
        "indicator_computation": (
            "rolling_columns: each candle over the TA agent's window, as published live"
            if live_window
            else "compute_columns over the warm-up and window candles at once"
        ),
        "market": {"exchange": bars.exchange, "symbol": bars.symbol, "timeframe": bars.timeframe},
        "data": {"source": bars.source, "cleaning": [bars.cleaning.summary()] if bars.cleaning else []},
        "window": {
            "start": _iso(traded[0].open_time) if traded else None,
            "end": _iso(traded[-1].close_time) if traded else None,
            "candles": len(traded),
            "warmup_candles": window.warmup,
        },
        **result.config.as_dict(),
    }


def result_document(
    result: BacktestResult, spec: RunSpec | None = None, *, created_at: datetime | None = None, live_window: bool = False
) -> dict[str, Any]:
    """The whole record of one run (see the module docstring)."""
    equity = result.equity
    drawdown = drawdown_series(equity)
    # Each BUY/SELL signal's outcome, as the live audit has it: FILLED, or the rejection's code.
    outcomes = {r.signal_bar: r.code for r in result.rejections}
    outcomes.update({t.signal_bar: "FILLED" for t in _fills(result)})
    return {
        "schema": SCHEMA,
        "created_at": _iso(created_at or datetime.now(UTC)),
        "config": _config(result, spec, live_window),
        "execution_model": EXECUTION_MODEL,
        "metrics": {k: _clean(v) for k, v in result.metrics.as_dict().items()},
        "final": {"cash": str(result.final_cash), "position": str(result.final_position)},
        "trades": [_trade(t) for t in result.trades],
        "signals": [
            {
                "bar": bar,
                "time": _iso(result.window.bars.candles[result.window.first + bar].close_time),
                "side": d.side.value,
                "confidence": d.confidence,
                "reason": d.reason,
                "outcome": outcomes.get(bar, "IGNORED" if d.side.value == "HOLD" else "NONE"),
            }
            for bar, d in result.signals
        ],
        "rejections": [
            {"bar": r.bar, "signal_bar": r.signal_bar, "time": _iso(r.time), "side": r.side, "code": r.code, "reason": r.reason}
            for r in result.rejections
        ],
        "rejections_by_reason": result.rejections_by_reason,
        "equity_curve": {
            "time": [_iso(t) for t in equity_times(result)],
            "equity": [round(float(v), 8) for v in equity],
            "drawdown": [round(float(v), 10) for v in drawdown],
        },
    }


def grid_document(
    ranked: Sequence[tuple[BacktestResult, RunSpec]], rank_by: str, *, created_at: datetime | None = None, live_window: bool = False
) -> dict[str, Any]:
    """A sweep: every combination's parameters and metrics, best first, and the best run's
    full document."""
    best, best_spec = ranked[0]
    return {
        "schema": SCHEMA,
        "kind": "grid",
        "rank_by": rank_by,
        "runs": len(ranked),
        "ranking": [
            {
                "rank": number,
                "overrides": spec.overrides,
                "params": result.strategy.params.model_dump(mode="json"),
                "metrics": {k: _clean(v) for k, v in result.metrics.as_dict().items()},
            }
            for number, (result, spec) in enumerate(ranked, start=1)
        ],
        "best": result_document(best, best_spec, created_at=created_at, live_window=live_window),
    }


def save_document(document: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """Write ``out_dir/stem.json`` (a numbered suffix instead of overwriting)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    number = 1
    while path.exists():
        number += 1
        path = out_dir / f"{stem}-{number}.json"
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def plot_equity(result: BacktestResult, path: Path, title: str) -> Path:
    """Equity (with buy and hold beside it) over drawdown, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in threads and CI
    import matplotlib.pyplot as plt

    times = equity_times(result)
    equity = result.equity
    window = result.window
    closes = window.bars.close[window.first :]
    start_cash = float(equity[0])
    hold = np.r_[start_cash, start_cash * closes / window.bars.open[window.first]] if len(closes) else equity
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        top.plot(times, equity, label="strategy equity", color="tab:blue", linewidth=1.1)
        top.plot(times, hold, label="buy and hold (no fees)", color="tab:gray", linewidth=0.8, alpha=0.8)
        for trade in result.trades:
            top.axvline(trade.entry.time, color="tab:green", alpha=0.08, linewidth=0.6)
        top.set_ylabel(f"equity ({window.bars.symbol.split('/')[1]})")
        top.set_title(title)
        top.legend(loc="upper left")
        top.grid(alpha=0.3)
        drawdown = -100.0 * drawdown_series(equity)
        bottom.fill_between(times, drawdown, 0.0, color="tab:red", alpha=0.4, linewidth=0)
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_params(params: dict[str, Any]) -> str:
    """``{"fast": 5, "slow": 60}`` -> ``fast=5, slow=60`` (empty: ``default parameters``)."""
    return ", ".join(f"{name}={value}" for name, value in params.items()) or "default parameters"


def cleaning_lines(report: CleaningReport | None, source: str) -> list[str]:
    """A short block for standard error on what cleaning the data refused, dropped and found
    missing (nothing when the source was clean or the candles came from a store)."""
    if report is None:
        return []
    lines = []
    if report.refusals:
        texts = describe_refusals(report)
        if len(texts) == 1:
            lines.append(f"refused {report.refused} rows: {texts[0]}")
        else:
            lines.append(f"refused {report.refused} rows:")
            lines.extend(f"  {text}" for text in texts)
    duplicates = report.duplicates_dropped + report.conflicting_duplicates
    if duplicates:
        lines.append(f"dropped {duplicates} duplicate rows ({report.conflicting_duplicates} with other values; kept the last)")
    if report.gaps:
        largest = max(report.gaps, key=lambda gap: gap.missing)
        lines.append(
            f"{len(report.gaps)} gaps, {report.missing_candles} missing candles (not filled); "
            f"largest: {largest.missing} from {largest.start:%Y-%m-%d %H:%M} UTC"
        )
    if not lines:
        return []
    return [f"data {source}: {report.rows_read} rows -> {report.candles} candles", *(f"  {line}" for line in lines)]


def execution_rule(result: BacktestResult) -> str:
    """The fill rule of the run in a few words (the tables' caption)."""
    return CLOSE_RULE if result.config.fill_at.value == "close" else EXECUTION_RULE


def rejection_table(result: BacktestResult) -> Table:
    """Rejections by reason code, like the live risk audit's (reason → count)."""
    table = Table(title="Rejections by reason")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for code, count in result.rejections_by_reason.items():
        table.add_row(code, str(count))
    return table


def exit_counts(result: BacktestResult) -> str:
    """How the closed trades ended: '3 x STOP_LOSS, 2 x SIGNAL' (or 'none')."""
    counts: dict[str, int] = {}
    for trade in result.trades:
        if trade.exit_reason is not None:
            counts[trade.exit_reason] = counts.get(trade.exit_reason, 0) + 1
    return ", ".join(f"{count} x {reason}" for reason, count in sorted(counts.items())) or "none"


def summary_table(result: BacktestResult, title: str, caption: str | None = EXECUTION_RULE) -> Table:
    """The headline metrics of one run for the terminal; the execution rule as the caption."""
    m = result.metrics
    quote = result.window.bars.symbol.split("/")[1]
    hours = m.max_drawdown_duration_hours
    rows = [
        ("Total return", _pct(m.total_return)),
        ("Buy and hold (no fees)", _pct(m.buy_and_hold_return)),
        ("CAGR", _pct(m.cagr)),
        ("Sharpe (annualised)", _num(m.sharpe)),
        ("Sortino (annualised)", _num(m.sortino)),
        ("Max drawdown", f"{100 * m.max_drawdown:.2f}%"),
        ("Max drawdown duration", f"{m.max_drawdown_bars} candles ({hours / 24:.1f} days)"),
        ("Trades", str(m.trades)),
        *([("Closed by", exit_counts(result))] if result.config.exits is not None else []),
        ("Win rate", _pct(m.win_rate).lstrip("+")),
        ("Profit factor", _num(m.profit_factor)),
        ("Average trade", f"{_num(m.average_trade_pnl)} {quote} ({_pct(m.average_trade_return)})"),
        ("Exposure", f"{100 * m.exposure:.1f}%"),
        ("Final equity", f"{m.final_equity:,.2f} {quote} (from {result.config.initial_cash:,} {quote})"),
        ("Candles", f"{m.bars} (+{result.window.warmup} warm-up)"),
    ]
    table = Table(title=title, caption=caption, show_header=False, title_justify="left", caption_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def grid_table(ranked: Sequence[tuple[BacktestResult, RunSpec]], rank_by: str, top: int) -> Table:
    """The best ``top`` combinations of a sweep, the winner's parameters in the title and buy
    and hold over the same candles in the caption (a column if the runs' windows differ)."""
    names = sorted({key for _, spec in ranked for key in spec.overrides})
    winner = format_params(ranked[0][1].overrides)
    title = f"grid: {len(ranked)} runs ranked by {rank_by} (best {min(top, len(ranked))})\nbest: {winner}"
    holds = {result.metrics.buy_and_hold_return for result, _ in ranked}
    hold_column = len(holds) > 1
    caption = None if hold_column else f"buy and hold (no fees) over the same candles: {_pct(holds.pop())}"
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    headings = ["return", "sharpe", "sortino", "max dd", "trades", "win rate"]
    if hold_column:
        headings.insert(1, "hold")
    for heading in headings:
        table.add_column(heading, justify="right")
    for number, (result, spec) in enumerate(ranked[:top], start=1):
        m = result.metrics
        values = [
            _pct(m.total_return), _num(m.sharpe), _num(m.sortino), f"{100 * m.max_drawdown:.2f}%",
            str(m.trades), _pct(m.win_rate).lstrip("+"),
        ]
        if hold_column:
            values.insert(1, _pct(m.buy_and_hold_return))
        table.add_row(str(number), *(str(spec.overrides.get(name, "")) for name in names), *values)
    return table

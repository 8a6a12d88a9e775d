"""The backtest tool: the backtester's own engine over candles stored in InfluxDB, bounded.

A tool call must not tie the server up: the traded window is capped at
MCP_BACKTEST_MAX_CANDLES (checked before anything is read), the run happens in a worker thread
so heartbeats and other calls go on, and the answer is the result document without its
per-candle equity curve (trades, signals and rejections are cut to the most recent ones).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.backtest.data import Bars, load_influx_bars, select_window
from agents.backtest.engine import BacktestConfig
from agents.backtest.riskpath import RiskPath, risk_settings
from agents.backtest.report import result_document
from agents.backtest.runs import resolve_strategy, run_specs, spec_for, warmup_for
from agents.strategy.loader import is_reference
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import load_market_snapshot, market_rules
from infra.exchanges.paper import PaperConfig
from infra.influx import InfluxPriceStore
from protocol import timeframe_seconds

__all__ = ["BacktestRefused", "refuse_code_reference", "stored_backtest"]

_KEEP = 20


class BacktestRefused(ValueError):
    """The request cannot run (unknown strategy, too large, too little data); the text says why."""


def refuse_code_reference(strategy: str) -> None:
    """``BacktestRefused`` for ``file.py:Class`` / ``module:Class``: loading it runs that code in
    this process, and a caller (even with only the read token) must not get to execute a file or
    import a module of its choosing. A user strategy the operator configured is reachable by its
    instance id."""
    if is_reference(strategy):
        raise BacktestRefused(f"{strategy!r}: a strategy file or module is not loaded over MCP; "
                              "name a built-in kind or a configured instance id")


async def stored_backtest(
    store: InfluxPriceStore,
    *,
    strategy: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    candles: int,
    start: datetime | None,
    end: datetime | None,
    params: dict[str, Any],
    fraction: Decimal | None,
    cash: Decimal,
    max_candles: int,
    indicator_base: IndicatorParams,
    risk_limits: bool = True,
) -> dict[str, Any]:
    """Backtest ``strategy`` (a kind or a configured instance id) on stored candles: the last
    ``candles`` ones, or ``start <= open_time < end``. ``BacktestRefused`` with the reason.

    The risk path is the live risk manager's (decision 0024: its RISK_* limits and sizing, with
    ``fraction`` as RISK_SIZING_FRACTION when given); ``risk_limits=False`` backtests the
    strategy alone (no limit refuses, ``fraction`` of the balance per BUY, all-in by default)."""
    refuse_code_reference(strategy)
    try:
        spec = spec_for(resolve_strategy(strategy), indicator_base, params)
        warm = warmup_for([spec])
        rules = market_rules(load_market_snapshot(exchange), symbol)
        paper = PaperConfig()
        risk = RiskPath.from_settings(risk_settings(), fraction=fraction) if risk_limits else None
        config = BacktestConfig(rules=rules, initial_cash=cash, fees=paper.fees, slippage_bps=paper.slippage_bps,
                                fraction=fraction if fraction is not None else Decimal(1), risk=risk)
        config.sizing  # noqa: B018 - validates the fraction before any candle is read
    except (ValueError, KeyError) as exc:  # StrategyConfigError is a ValueError
        raise BacktestRefused(str(exc).strip("'\"")) from None
    if (start is None) != (end is None):
        raise BacktestRefused("give both start and end, or neither (then the last `candles` stored candles)")
    if start is not None and end is not None:
        span = int((end - start) / timedelta(seconds=timeframe_seconds(timeframe)))
        if span > max_candles:
            raise BacktestRefused(f"{span} candles from {start.isoformat()} to {end.isoformat()}: at most {max_candles} per call")
        bars = await load_influx_bars(store, exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end, warmup=warm)
    else:
        if candles > max_candles:
            raise BacktestRefused(f"{candles} candles: at most {max_candles} per call")
        stored = await store.last_candles(exchange, symbol, timeframe, candles + warm)
        bars = Bars(exchange, symbol, timeframe, tuple(stored), f"influxdb:{store.database} {exchange} {symbol} {timeframe}")
    try:
        window = select_window(bars, start=start, end=end, warmup=warm)
    except ValueError as exc:
        raise BacktestRefused(str(exc)) from None
    result = (await asyncio.to_thread(run_specs, window, [spec], config))[0]
    document = result_document(result, spec)
    document.pop("equity_curve", None)
    sizing = config.sizing
    document["risk"] = {
        "limits": "the live risk manager's (RISK_* settings)" if risk_limits else "none: the strategy alone",
        "sizing": {"mode": sizing.mode.value, "fraction": str(sizing.fraction)},
        "rejections_by_reason": result.rejections_by_reason,
    }
    for key, keep_last in (("trades", True), ("signals", True), ("rejections", False)):
        rows = document[key]
        document[f"{key}_total"] = len(rows)
        document[key] = rows[-_KEEP:] if keep_last else rows[:_KEEP]
    return document

"""The backtester's hot path takes shortcuts; each gives exactly what the plain way gives.

- The engine computes each closed trade's PnL and return itself, builds the equity curve from the
  fills, and hands the metrics two float columns: the same numbers as ``Trade.pnl``,
  ``Trade.return_pct``, cash + position x close, and ``compute_metrics``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from agents.backtest.data import Bars, select_window
from agents.backtest.engine import BacktestConfig, run_backtest
from agents.backtest.metrics import (
    TradeOutcome,
    bar_returns,
    compute_metrics,
    drawdown_series,
    max_drawdown,
    metrics_from_columns,
    sortino_ratio,
)
from agents.strategy.strategies import build_strategy
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules

def test_trade_figures_in_the_metrics_are_the_trades_own(btc_bars: Bars, rules: MarketRules) -> None:
    window = select_window(btc_bars.sliced(0, 4000), start=None, end=None, warmup=0)
    result = run_backtest(window, build_strategy("sma_cross", {"fast": 10, "slow": 30}), IndicatorParams(), BacktestConfig(rules=rules))
    closed = [t for t in result.trades if t.exit is not None]
    assert len(closed) > 50
    pnls = np.array([float(t.pnl) for t in closed if t.pnl is not None])
    returns = np.array([float(t.return_pct) for t in closed if t.return_pct is not None])
    metrics = result.metrics
    assert metrics.trades == len(closed)
    assert metrics.average_trade_pnl == pnls.mean()  # exactly, not approximately
    assert metrics.average_trade_return == returns.mean()
    assert metrics.win_rate == (pnls > 0).mean()
    assert metrics.profit_factor == pnls[pnls > 0].sum() / -pnls[pnls < 0].sum()


def test_equity_curve_is_cash_plus_position_times_close_at_every_close(btc_bars: Bars, rules: MarketRules) -> None:
    bars = btc_bars.sliced(0, 2990)  # ends inside a trade
    window = select_window(bars, start=bars.candles[1000].open_time, end=None, warmup=300)
    config = BacktestConfig(rules=rules)
    result = run_backtest(window, build_strategy("sma_cross", {"fast": 10, "slow": 30}), IndicatorParams(), config)
    assert result.trades[-1].exit is None  # a position still open at the end: both states are marked
    # Replay the fills bar by bar, as the account applies them.
    changes: dict[int, tuple[FillQuote, bool]] = {}
    for trade in result.trades:
        changes[trade.entry.bar] = (trade.entry.quote, True)
        if trade.exit is not None:
            changes[trade.exit.bar] = (trade.exit.quote, False)
    cash, position = config.initial_cash, Decimal(0)
    expected = [float(cash)]
    in_position = []
    for bar, close in enumerate(window.bars.close[window.first :]):
        if bar in changes:
            quote, bought = changes[bar]
            if bought:
                cash -= quote.notional + quote.fee
                position += quote.quantity
            else:
                cash += quote.notional - quote.fee
                position -= quote.quantity
        expected.append(float(cash) + float(position) * float(close))
        in_position.append(position > 0)
    assert result.equity.tolist() == expected  # bit for bit
    assert result.in_position.tolist() == in_position
    assert (result.final_cash, result.final_position) == (cash, position)


def test_metrics_from_columns_is_compute_metrics() -> None:
    rng = np.random.default_rng(8)
    equity = 10000 * np.cumprod(np.r_[1.0, 1 + rng.normal(0, 0.01, 3000)])
    outcomes = [TradeOutcome(float(p), float(r)) for p, r in zip(rng.normal(5, 40, 90), rng.normal(0, 0.02, 90), strict=True)]
    holding = rng.random(3000) < 0.4
    kwargs: dict[str, Any] = {"timeframe": "15m", "in_position": holding, "first_open": 100.0, "last_close": 120.0}
    expected = compute_metrics(equity, trades=outcomes, **kwargs)
    got = metrics_from_columns(
        equity, trade_pnls=[o.pnl for o in outcomes], trade_returns=[o.return_pct for o in outcomes], **kwargs
    )
    assert got == expected
    with pytest.raises(ValueError, match="trade PnLs"):
        metrics_from_columns(equity, trade_pnls=[1.0], trade_returns=[], **kwargs)


def test_in_place_metric_helpers_give_the_plain_formulas() -> None:
    rng = np.random.default_rng(7)
    equity = 500 * np.cumprod(np.r_[1.0, 1 + rng.normal(0, 0.02, 2000)])
    np.testing.assert_array_equal(bar_returns(equity), equity[1:] / equity[:-1] - 1.0)
    np.testing.assert_array_equal(drawdown_series(equity), 1.0 - equity / np.maximum.accumulate(equity))
    returns = equity[1:] / equity[:-1] - 1.0
    plain_sortino = float(np.mean(returns)) / math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) * math.sqrt(35040)
    assert sortino_ratio(returns, 35040) == plain_sortino
    # The longest run under water, counted one point at a time.
    longest = run = 0
    for drawdown in drawdown_series(equity):
        run = run + 1 if drawdown > 0 else 0
        longest = max(longest, run)
    assert max_drawdown(equity) == (float(drawdown_series(equity).max()), longest)
    assert longest > 10

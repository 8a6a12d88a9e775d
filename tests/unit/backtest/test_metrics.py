"""Backtest metrics on series small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.backtest.metrics import (
    TradeOutcome,
    compute_metrics,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    sortino_ratio,
)

# Start 100, then four bars: +10%, -10%, +10%, +10%.
EQUITY = np.array([100.0, 110.0, 99.0, 108.9, 119.79])


def test_periods_per_year_for_a_24_7_market() -> None:
    assert periods_per_year("1h") == 8760
    assert periods_per_year("15m") == 35040
    assert periods_per_year("1d") == 365


def test_four_bar_curve_by_hand() -> None:
    m = compute_metrics(
        EQUITY,
        timeframe="1h",
        trades=[TradeOutcome(10.0, 0.1), TradeOutcome(-5.0, -0.05), TradeOutcome(20.0, 0.2)],
        in_position=np.array([True, True, False, True]),
        first_open=50.0,
        last_close=60.0,
    )
    # returns 0.1, -0.1, 0.1, 0.1: mean 0.05; deviations .05 -.15 .05 .05, squares sum .03,
    # /3 = .01, sample std 0.1 -> 0.5 per bar, times sqrt(8760).
    assert m.sharpe == pytest.approx(0.5 * math.sqrt(8760))
    # downside deviation sqrt((0 + .01 + 0 + 0) / 4) = 0.05 -> mean / dd = 1.
    assert m.sortino == pytest.approx(math.sqrt(8760))
    assert m.total_return == pytest.approx(0.1979)
    assert m.final_equity == pytest.approx(119.79)
    # peak 110, trough 99: 10%; under water at 99 and 108.9, recovered at 119.79: 2 bars.
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_bars == 2
    assert m.max_drawdown_duration_hours == 2
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx(30 / 5)
    assert m.average_trade_pnl == pytest.approx(25 / 3)
    assert m.average_trade_return == pytest.approx(0.25 / 3)
    assert m.exposure == pytest.approx(0.75)
    assert m.trades == 3
    assert m.buy_and_hold_return == pytest.approx(0.2)
    assert m.bars == 4
    # Four hours annualised: 1.1979 ** (8760 / 4) - 1.
    assert m.cagr == pytest.approx(1.1979 ** 2190 - 1)


def test_cagr_beyond_float_range_is_undefined() -> None:
    # 1.1979 ** (35040 / 4) does not fit a float: undefined, not infinity or a guess.
    m = compute_metrics(EQUITY, timeframe="15m", trades=[], in_position=np.zeros(4, bool), first_open=1.0, last_close=1.0)
    assert m.cagr is None


def test_cagr_two_years_doubling_is_sqrt2_minus_1() -> None:
    bars = 730  # two years of daily bars
    equity = 100.0 * 2.0 ** (np.arange(bars + 1) / bars)
    m = compute_metrics(
        equity, timeframe="1d", trades=[], in_position=np.ones(bars, bool), first_open=1.0, last_close=2.0
    )
    assert m.cagr == pytest.approx(math.sqrt(2) - 1)
    assert m.total_return == pytest.approx(1.0)
    assert m.max_drawdown == 0.0 and m.max_drawdown_bars == 0
    # A curve that never falls has no downside deviation: Sortino undefined.
    assert m.sortino is None


def test_undefined_figures_are_none() -> None:
    flat = np.array([100.0, 100.0, 100.0])
    m = compute_metrics(flat, timeframe="15m", trades=[], in_position=np.zeros(2, bool), first_open=None, last_close=None)
    assert m.sharpe is None  # no variance
    assert m.win_rate is None and m.profit_factor is None and m.average_trade_pnl is None
    assert m.exposure == 0.0 and m.trades == 0 and m.total_return == 0.0
    assert m.buy_and_hold_return is None


def test_drawdown_never_recovered_runs_to_the_end() -> None:
    deepest, bars = max_drawdown(np.array([100.0, 120.0, 90.0, 100.0, 110.0]))
    assert deepest == pytest.approx(0.25)
    assert bars == 3


def test_only_winners_has_no_profit_factor() -> None:
    m = compute_metrics(
        EQUITY, timeframe="1h", trades=[TradeOutcome(1.0, 0.01)], in_position=np.zeros(4, bool),
        first_open=1.0, last_close=1.0,
    )
    assert m.profit_factor is None and m.win_rate == 1.0


def test_short_series() -> None:
    assert sharpe_ratio(np.array([0.1]), 8760) is None
    assert sortino_ratio(np.array([]), 8760) is None
    with pytest.raises(ValueError):
        compute_metrics(EQUITY, timeframe="1h", trades=[], in_position=np.zeros(3, bool), first_open=1.0, last_close=1.0)

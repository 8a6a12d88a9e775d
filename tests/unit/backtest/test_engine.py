"""The engine: execution model by hand, look-ahead, fast path = per-candle decide, account."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest

from agents.backtest.data import Bars, select_window
from agents.backtest.engine import BacktestConfig, BacktestResult, build_history, rows_to_decide, run_backtest
from agents.strategy.config import load_strategy_config
from agents.strategy.strategies import SmaCrossStrategy, Strategy, build_strategy
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules
from infra.exchanges.paper.fills import market_fill_price
from protocol import Side, SignalSide
from tests.unit.backtest.conftest import make_bars

PARAMS = IndicatorParams()


def run(bars: Bars, strategy: Strategy, rules: MarketRules, *, fast: bool = True, warmup: int = 0, **config: object) -> BacktestResult:
    window = select_window(bars, start=None, end=None, warmup=warmup)
    return run_backtest(window, strategy, PARAMS, BacktestConfig(rules=rules, **config), fast=fast)  # type: ignore[arg-type]


def strategies() -> list[Strategy]:
    combined = next(i for i in load_strategy_config() if i.kind == "combined")
    return [
        build_strategy("sma_cross", {"fast": 10, "slow": 30}),
        build_strategy("rsi", {"preset": "aggressive"}),
        build_strategy("macd_cross"),
        build_strategy("bollinger_reversion"),
        combined.build(),
    ]


def test_one_trade_by_hand(rules: MarketRules) -> None:
    # SMA2/SMA3 of these closes: spread 0 at bar 2, > 0 at bar 3 (BUY), < 0 at bar 6 (SELL).
    bars = make_bars([10, 10, 10, 12, 14, 12, 9, 8, 8])
    result = run(bars, build_strategy("sma_cross", {"fast": 2, "slow": 3}), rules, slippage_bps=Decimal(0))
    sides = [(bar, d.side) for bar, d in result.signals]
    assert sides == [(0, SignalSide.HOLD), (3, SignalSide.BUY), (4, SignalSide.HOLD), (6, SignalSide.SELL), (7, SignalSide.HOLD)]
    [trade] = result.trades
    assert trade.exit is not None
    # Signal at the close of bar 3 -> filled at the open of bar 4 (= close of bar 3, 12).
    assert (trade.entry.signal_bar, trade.entry.bar, trade.exit.signal_bar, trade.exit.bar) == (3, 4, 6, 7)
    # All-in: floor(10000 / (12 x 1.001)) to the 0.00001 lot = 832.50083 BTC.
    assert trade.entry.quote.quantity == Decimal("832.50083")
    assert trade.entry.quote.price == Decimal(12) and trade.exit.quote.price == Decimal(9)
    assert trade.entry.quote.fee == Decimal("9.99000996")  # 9990.00996 x 0.001
    assert trade.exit.quote.fee == Decimal("7.49250747")  # 7492.50747 x 0.001
    # Cost 9990.00996 + 9.99000996 = 9999.99996996 (0.00003004 left); proceeds
    # 7492.50747 - 7.49250747 = 7485.01496253.
    assert trade.pnl == Decimal("7485.01496253") - Decimal("9999.99996996")
    assert result.final_cash == Decimal("7485.01499257") and result.final_position == 0
    # Equity: flat to bar 3, then cash 0.00003004 + 832.50083 x close, then the cash.
    expected = [10000, 10000, 10000, 10000, 10000, 11655.01165004, 9990.00999004, 7492.50750004, 7485.01499257, 7485.01499257]
    np.testing.assert_allclose(result.equity, expected, rtol=1e-12)
    assert result.in_position.tolist() == [False, False, False, False, True, True, True, False, False]
    assert result.metrics.trades == 1 and result.metrics.win_rate == 0.0


def test_fills_follow_the_paper_rules_on_real_data(btc_bars: Bars, rules: MarketRules) -> None:
    bars = btc_bars.sliced(0, 3000)
    result = run(bars, build_strategy("sma_cross", {"fast": 10, "slow": 30}), rules)
    assert len(result.trades) > 20
    cash = Decimal(10000)
    for trade in result.trades:
        for fill, side in ((trade.entry, Side.BUY), (trade.exit, Side.SELL)):
            if fill is None:
                continue
            assert fill.bar == fill.signal_bar + 1
            reference = bars.candles[fill.bar].open
            assert fill.quote.price == market_fill_price(side, reference, Decimal(5), rules.tick_size)
            assert fill.quote.fee == fill.quote.notional * Decimal("0.001")
            assert fill.quote.quantity % rules.lot_step == 0
        entry_cost = trade.entry.quote.notional + trade.entry.quote.fee
        assert entry_cost <= cash  # never overdrawn
        # All-in: what is left cannot pay for one more lot.
        assert cash - entry_cost < rules.lot_step * trade.entry.quote.price * Decimal("1.0015")
        cash -= entry_cost
        if trade.exit is not None:
            cash += trade.exit.quote.notional - trade.exit.quote.fee
    assert cash == result.final_cash
    last_close = float(bars.candles[-1].close)
    assert result.equity[-1] == pytest.approx(float(result.final_cash) + float(result.final_position) * last_close)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "exhaustive"])
def test_future_candles_never_change_past_signals_or_trades(btc_bars: Bars, rules: MarketRules, fast: bool) -> None:
    bars = btc_bars.sliced(0, 1600)
    cut = 1100
    # Future rows rewritten (+30%, volume x 5) or absent altogether.
    changed = tuple(
        c if i < cut else c.model_copy(update={k: getattr(c, k) * Decimal("1.3") for k in ("open", "high", "low", "close")} | {"volume": c.volume * 5})
        for i, c in enumerate(bars.candles)
    )
    variants = [Bars(bars.exchange, bars.symbol, bars.timeframe, changed, "changed"), bars.sliced(0, cut)]
    for strategy in strategies():
        base = run(bars, strategy, rules, fast=fast)
        for variant in variants:
            other = run(variant, strategy, rules, fast=fast)
            assert [s for s in other.signals if s[0] < cut] == [s for s in base.signals if s[0] < cut], strategy
            fills = lambda r: [(f.bar, f.quote) for t in r.trades for f in (t.entry, t.exit) if f is not None and f.bar < cut]  # noqa: E731
            assert fills(other) == fills(base), strategy
            np.testing.assert_array_equal(other.equity[: cut + 1], base.equity[: cut + 1])


def _random_walk(seed: int, n: int = 2500) -> Bars:
    rng = np.random.default_rng(seed)
    # Whole-dollar closes with frequent repeats: moving averages tie and touch, the edge cases.
    steps = rng.choice([-2, -1, 0, 0, 0, 1, 2], size=n)
    closes = 30000 + np.cumsum(steps)
    return make_bars([int(c) for c in closes], timeframe="15m")


@pytest.mark.parametrize("source", ["real", "walk-1", "walk-2"])
def test_fast_path_equals_deciding_every_candle(btc_bars: Bars, rules: MarketRules, source: str) -> None:
    bars = btc_bars if source == "real" else _random_walk(int(source[-1]))
    candidates = [
        build_strategy("sma_cross", {"fast": 10, "slow": 30}),
        build_strategy("sma_cross", {"fast": 2, "slow": 3}),
        build_strategy("rsi"),
        build_strategy("rsi", {"preset": "aggressive"}),
        build_strategy("macd_cross"),
        build_strategy("bollinger_reversion"),
        build_strategy("bollinger_reversion", {"lower": 0.2, "upper": 0.8}),
        build_strategy(
            "combined",
            {"members": [{"kind": "rsi", "params": {"preset": "aggressive"}}, {"kind": "macd_cross"},
                         {"kind": "sma_cross", "params": {"fast": 10, "slow": 30}}], "min_score": 0.1},
        ),
    ]
    for strategy in candidates:
        assert strategy.candidate_rows(build_history(select_window(bars, start=None, end=None, warmup=0), PARAMS)) is not None
        fast = run(bars, strategy, rules, fast=True)
        slow = run(bars, strategy, rules, fast=False)
        assert fast.signals == slow.signals, strategy
        assert fast.trades == slow.trades, strategy
        np.testing.assert_array_equal(fast.equity, slow.equity)


def test_warmup_candles_are_not_traded(btc_bars: Bars, rules: MarketRules) -> None:
    start = btc_bars.candles[2000].open_time
    window = select_window(btc_bars, start=start, end=btc_bars.candles[3000].open_time, warmup=500)
    assert (window.warmup, window.traded) == (500, 1000)
    result = run_backtest(window, build_strategy("sma_cross", {"fast": 10, "slow": 30}), PARAMS, BacktestConfig(rules=rules))
    assert result.metrics.bars == 1000 and len(result.equity) == 1001
    assert all(f.time >= start for t in result.trades for f in (t.entry, t.exit) if f is not None)
    # Warm indicators from the first traded candle on: no "warming up" in the window.
    assert "warming" not in result.signals[0][1].reason
    assert result.metrics.buy_and_hold_return == pytest.approx(
        float(btc_bars.candles[2999].close) / float(btc_bars.candles[2000].open) - 1
    )


def test_signals_that_cannot_fill_are_reported(rules: MarketRules) -> None:
    bars = make_bars([10, 10, 10, 12, 14, 12, 9, 8, 8])
    poor = run(bars, build_strategy("sma_cross", {"fast": 2, "slow": 3}), rules, initial_cash=Decimal(1))
    assert poor.trades == []
    # The SELL after the BUY that could not fill finds no position: NO_POSITION, as live.
    assert [r.code for r in poor.rejections] == ["INSUFFICIENT_BALANCE", "NO_POSITION"]
    assert poor.rejections_by_reason == {"INSUFFICIENT_BALANCE": 1, "NO_POSITION": 1}
    assert poor.equity.tolist() == [1.0] * 10
    # A BUY on the last candle has no next open.
    last = run(make_bars([10, 10, 10, 12]), build_strategy("sma_cross", {"fast": 2, "slow": 3}), rules)
    assert last.trades == [] and "no next open" in last.rejections[0].reason


def test_fraction_sizing(btc_bars: Bars, rules: MarketRules) -> None:
    bars = btc_bars.sliced(0, 1500)
    half = run(bars, build_strategy("sma_cross", {"fast": 10, "slow": 30}), rules, fraction=Decimal("0.5"))
    entry = half.trades[0].entry.quote
    assert entry.notional + entry.fee == pytest.approx(Decimal(5000), rel=Decimal("0.001"))
    assert replace(half.config, fraction=Decimal(1)).sizing.fraction == 1


def test_live_window_indicators_are_the_ta_agents(btc_bars: Bars) -> None:
    from agents.backtest.engine import build_history
    from agents.technical_analysis.indicators import rolling_columns

    bars = btc_bars.sliced(0, 700)
    window = select_window(bars, start=bars.candles[600].open_time, end=None, warmup=600)
    live = build_history(window, PARAMS, live_window=True)
    expected = rolling_columns(bars.open_time, bars.open, bars.high, bars.low, bars.close, bars.volume, PARAMS)
    np.testing.assert_array_equal(live.col("rsi"), expected["rsi"])
    np.testing.assert_array_equal(live.col("macd"), expected["macd"])


class _LyingMask(SmaCrossStrategy):
    """An SMA crossover whose candidate_rows() marks the row BEFORE each crossing instead."""

    def candidate_rows(self, history):  # type: ignore[no-untyped-def]
        mask = super().candidate_rows(history)
        assert mask is not None
        return np.r_[mask[1:], False]


def test_a_mask_that_contradicts_decide_aborts_the_run(btc_bars: Bars, rules: MarketRules) -> None:
    strategy = _LyingMask({"fast": 10, "slow": 30})
    # The row after each marked row is decided too: there decide() crosses, which the mask
    # called a certain HOLD.
    with pytest.raises(RuntimeError, match="candidate_rows"):
        run(btc_bars.sliced(0, 400), strategy, rules)
    assert run(btc_bars.sliced(0, 400), strategy, rules, fast=False).trades  # --exhaustive ignores the mask


def test_a_subclass_that_decides_differently_gets_no_mask(btc_bars: Bars) -> None:
    class Contrarian(SmaCrossStrategy):
        def decide(self, history, i):  # type: ignore[no-untyped-def]
            return super().decide(history, i)

    history = build_history(select_window(btc_bars.sliced(0, 300), start=None, end=None, warmup=0), PARAMS)
    assert Contrarian({"fast": 10, "slow": 30}).candidate_rows(history) is None
    assert SmaCrossStrategy({"fast": 10, "slow": 30}).candidate_rows(history) is not None


def test_rows_to_decide_adds_the_first_row_and_the_row_after_each_mark() -> None:
    mask = np.array([True, False, False, True, False, False, True, True, False, False])
    assert rows_to_decide(mask, 0) == [0, 1, 3, 4, 6, 7, 8]
    assert rows_to_decide(mask, 5) == [5, 6, 7, 8]


def test_only_the_columns_a_strategy_reads_are_computed(btc_bars: Bars) -> None:
    window = select_window(btc_bars.sliced(0, 600), start=None, end=None, warmup=0)
    full = build_history(window, PARAMS)
    for strategy in strategies():
        columns = strategy.indicator_columns
        assert columns is not None
        lean = build_history(window, PARAMS, only=columns)
        for name in columns | {"close"}:
            np.testing.assert_array_equal(lean.col(name), full.col(name))
        assert [strategy.decide(lean, i) for i in range(600)] == [strategy.decide(full, i) for i in range(600)]

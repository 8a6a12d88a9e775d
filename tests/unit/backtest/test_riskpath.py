"""The risk path in backtests (issue #18): the live risk rules decide every BUY/SELL on the
simulated account, rejections keep the live reason codes, settings as the agent reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents.backtest.data import Bars, select_window
from agents.backtest.exits import AtrColumn
from agents.backtest.engine import BacktestConfig, run_backtest, run_shared
from agents.backtest.parity import Outcome, differences
from agents.backtest.riskpath import RiskPath, SignalFacts, SimAccount, risk_overrides, risk_settings
from agents.backtest.simulate import FillAt
from agents.risk_manager.rules import Approved, Rejected
from agents.risk_manager.sizing import SizedOrder, size_order
from agents.strategy.strategies import build_strategy
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules
from protocol import RejectionReason, Side, SignalSide
from tests.unit.backtest.conftest import make_bars

PARAMS = IndicatorParams()
T0 = datetime(2021, 10, 1, tzinfo=UTC)


def facts(side: SignalSide, confidence: float = 0.9, price: str = "100") -> SignalFacts:
    return SignalFacts(side, confidence, Decimal(price), T0, "1h", "binance", "BTC/USDT", "test")


def test_the_live_defaults_apply_and_refuse_with_the_live_reason_codes(rules: MarketRules) -> None:
    account = SimAccount(Decimal(10000), rules, "binance", RiskPath.from_settings(risk_settings()))
    now = T0.replace(hour=1)
    # The live default sizing: 10 % of the available quote, lot-rounded.
    bought = account.decide("a", facts(SignalSide.BUY), Decimal(100), now)
    assert isinstance(bought, Approved) and bought.order.notional <= Decimal(1000)
    sold = account.decide("a", facts(SignalSide.SELL), Decimal(100), now)
    assert isinstance(sold, Rejected) and sold.reason is RejectionReason.NO_POSITION
    low = SimAccount(Decimal(10000), rules, "binance", RiskPath.from_settings(risk_settings("min_confidence=0.8")))
    refused = low.decide("a", facts(SignalSide.BUY, confidence=0.6), Decimal(100), now)
    assert isinstance(refused, Rejected) and refused.reason is RejectionReason.LOW_CONFIDENCE


def test_settings_come_from_the_environment_like_the_agent_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_MAX_OPEN_POSITIONS", "3")
    monkeypatch.setenv("RISK_SIZING_FRACTION", "0.25")
    path = RiskPath.from_settings(risk_settings("max_orders_per_hour=2"))
    assert path.limits.max_open_positions == 3 and path.limits.max_orders_per_hour == 2
    assert path.sizing.fraction == Decimal("0.25")
    assert RiskPath.from_settings(risk_settings(), fraction=Decimal("0.5")).sizing.fraction == Decimal("0.5")
    assert risk_overrides("RISK_MIN_CONFIDENCE=0.5,max_drawdown=0.1") == {"RISK_MIN_CONFIDENCE": "0.5", "RISK_MAX_DRAWDOWN": "0.1"}
    with pytest.raises(ValueError, match="RISK_MAX_OPEN_POSITIONS"):
        risk_overrides("max_open_position=2")  # a typo is refused, naming what is accepted
    with pytest.raises(ValueError, match="RISK_MAX_DRAWDOWN: Input should be less than or equal to 1"):
        risk_settings("max_drawdown=2")  # beyond the model's bound


def test_frequency_and_drawdown_limits_bind_in_a_backtest(btc_bars: Bars, rules: MarketRules) -> None:
    window = select_window(btc_bars.sliced(0, 3000), start=None, end=None, warmup=0)
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 12})
    free = run_backtest(window, strategy, PARAMS, BacktestConfig(rules=rules, risk=RiskPath.from_settings(risk_settings())))
    capped = run_backtest(window, strategy, PARAMS, BacktestConfig(
        rules=rules, risk=RiskPath.from_settings(risk_settings("min_order_interval=21600,max_drawdown=0.01,sizing_fraction=1,max_symbol_exposure=1,max_total_exposure=1")),
    ))
    assert free.signals == capped.signals  # the strategy said the same; the risk path refused
    assert len(capped.trades) < len(free.trades)
    reasons = capped.rejections_by_reason
    assert reasons.get("MIN_ORDER_INTERVAL", 0) > 0 and reasons.get("DRAWDOWN_PAUSE", 0) > 0
    assert list(reasons.values()) == sorted(reasons.values(), reverse=True)
    assert sum(reasons.values()) == len(capped.rejections)


def test_strategies_share_one_account_and_its_limits(btc_bars: Bars, rules: MarketRules) -> None:
    window = select_window(btc_bars.sliced(0, 2000), start=None, end=None, warmup=0)
    pair = [("fast", build_strategy("sma_cross", {"fast": 5, "slow": 12})), ("slow", build_strategy("sma_cross", {"fast": 10, "slow": 30}))]
    one = RiskPath.from_settings(risk_settings("max_open_positions=1"))
    results = run_shared(window, pair, PARAMS, BacktestConfig(rules=rules, risk=one, fill_at=FillAt.CLOSE))
    assert [r.strategy_id for r in results] == ["fast", "slow"]
    refused = [r for res in results for r in res.rejections if r.code == "MAX_OPEN_POSITIONS"]
    assert refused, "one position at a time across both strategies"
    # Never two strategies holding at once: replay the fills in order.
    holding: dict[str, Decimal] = {}
    for fill in sorted((f for res in results for f in res.fills), key=lambda f: (f.bar, f.time)):
        signed = fill.quote.quantity if fill.quote.side.value == "BUY" else -fill.quote.quantity
        holding[fill.strategy_id] = holding.get(fill.strategy_id, Decimal(0)) + signed
        assert sum(1 for q in holding.values() if q) <= 1
    # Alone, each would have traded more.
    alone = run_backtest(window, pair[1][1], PARAMS, BacktestConfig(rules=rules, risk=one, fill_at=FillAt.CLOSE))
    assert len(alone.fills) >= len(results[1].fills)


def test_atr_sizing_sizes_each_buy_by_its_candle_s_atr(btc_bars: Bars, rules: MarketRules) -> None:
    """RISK_SIZING_MODE=atr in a backtest: each BUY is sized from the ATR of its signal candle, as
    the risk manager sizes it from the stored ATR (before, every BUY was refused NO_PRICE)."""
    window = select_window(btc_bars.sliced(0, 1500), start=None, end=None, warmup=0)
    path = RiskPath.from_settings(risk_settings("sizing_mode=atr,per_trade=0.001"))
    result = run_backtest(window, build_strategy("sma_cross", {"fast": 5, "slow": 12}), PARAMS,
                          BacktestConfig(rules=rules, risk=path, fill_at=FillAt.CLOSE))
    assert "NO_PRICE" not in result.rejections_by_reason
    atr = AtrColumn(window, PARAMS)
    buys = [f for f in result.fills if f.quote.side.value == "BUY"]
    assert len(buys) >= 3
    cash = BacktestConfig(rules=rules).initial_cash
    first = buys[0]  # the account is all cash then: equity is the initial cash
    row = window.first + first.signal_bar
    expected = size_order(Side.BUY, window.bars.candles[row].close, rules, path.sizing,
                          available_quote=cash, equity=cash, atr=atr.at(row))
    assert isinstance(expected, SizedOrder) and first.quote.quantity == expected.quantity
    # Not the fraction sizing's quantity: the ATR decided it.
    fraction = size_order(Side.BUY, window.bars.candles[row].close, rules, RiskPath.from_settings(risk_settings()).sizing,
                          available_quote=cash, equity=cash)
    assert isinstance(fraction, SizedOrder) and fraction.quantity != first.quote.quantity


def test_fill_at_close_fills_at_the_signal_candle_s_close(rules: MarketRules) -> None:
    bars = make_bars([10, 10, 10, 12, 14, 12, 9, 8, 8], opens=[10, 10, 10, 11, 13, 13, 10, 9, 8])
    window = select_window(bars, start=None, end=None, warmup=0)
    result = run_backtest(window, build_strategy("sma_cross", {"fast": 2, "slow": 3}), PARAMS,
                          BacktestConfig(rules=rules, slippage_bps=Decimal(0), fill_at=FillAt.CLOSE))
    assert result.trades, "the crossover traded"
    for fill in result.fills or [f for t in result.trades for f in (t.entry, t.exit) if f is not None]:
        assert fill.bar == fill.signal_bar
        assert fill.quote.price == bars.candles[fill.bar].close


def test_differences_name_signal_decision_and_fill() -> None:
    key = ("s", T0, "BUY", "")
    other = ("s", T0.replace(hour=2), "SELL", "STOP_LOSS")
    ours = Outcome({key: "APPROVED", other: "NO_POSITION"}, {key: (Decimal("0.1"), Decimal("100"))})
    assert differences(ours, ours) == []
    theirs = Outcome({key: "APPROVED"}, {key: (Decimal("0.1"), Decimal("100.5"))})
    found = {(d.key, d.what) for d in differences(ours, theirs)}
    assert found == {(key, "fill"), (other, "signal")}
    refused = Outcome({key: "HOURLY_ORDER_LIMIT", other: "NO_POSITION"}, {})
    assert {(d.what, d.backtest, d.bus) for d in differences(ours, refused)} == {
        ("decision", "APPROVED", "HOURLY_ORDER_LIMIT"), ("fill", "0.1 @ 100", "-"),
    }

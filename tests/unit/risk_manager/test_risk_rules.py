"""Each risk rule refuses with its own reason code, in the documented order; HOLD is ignored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from agents.risk_manager.rules import (
    Approved,
    Ignored,
    Rejected,
    RiskLimits,
    RiskSnapshot,
    check_frequency,
    check_price_collar,
    evaluate,
)
from agents.risk_manager.sizing import SizingConfig
from infra.exchanges import load_market_snapshot, market_rules
from protocol import RejectionReason, Signal, SignalSide, TradingState

BTC = market_rules(load_market_snapshot("binance"), "BTC/USDT")
CANDLE = datetime(2021, 10, 1, 12, 0, tzinfo=UTC)
NOW = CANDLE + timedelta(minutes=15)
PRICE = D("43000")
LIMITS = RiskLimits(
    max_price_age=timedelta(seconds=120),
    min_confidence=0.5,
    max_open_positions=2,
    max_symbol_exposure=D("0.5"),
    max_total_exposure=D("0.8"),
    max_orders_per_hour=3,
    max_orders_per_day=5,
    min_order_interval=timedelta(minutes=10),
    max_drawdown=D("0.2"),
    max_order_notional=D("2000"),
    price_collar_bps=D("50"),
)
SIZING = SizingConfig(fraction=D("0.1"))


def signal(side: str = "BUY", confidence: float = 0.9, price: D = PRICE) -> Signal:
    return Signal(
        source="strategy", strategy_id="sma-btc", strategy="sma_cross", exchange="binance",
        symbol="BTC/USDT", timeframe="15m", side=side, confidence=confidence, reason="test",
        indicators={"sma_fast": D("1")}, candle_time=CANDLE, price=price,
    )


def snapshot(**changes: object) -> RiskSnapshot:
    base = RiskSnapshot(
        now=NOW,
        trading_state=TradingState.ACTIVE,
        emergency_stop=False,
        reference_price=PRICE,
        price_time=NOW - timedelta(seconds=5),
        available_quote=D("10000"),
        equity=D("10000"),
        position=D("0.1"),
        open_positions=1,
        has_exposure=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reason_of(sig: Signal, snap: RiskSnapshot, limits: RiskLimits = LIMITS) -> RejectionReason | None:
    outcome = evaluate(sig, snap, limits, SIZING, BTC).outcome
    return outcome.reason if isinstance(outcome, Rejected) else None


def test_a_clean_buy_is_approved_with_a_sized_order_and_its_inputs() -> None:
    decision = evaluate(signal(), snapshot(), LIMITS, SIZING, BTC)
    assert isinstance(decision.outcome, Approved)
    order = decision.outcome.order
    assert order.quantity == D("0.02322") and order.price == PRICE
    inputs = decision.inputs
    assert inputs["snapshot"]["reference_price"] == PRICE
    assert inputs["snapshot"]["price_age_seconds"] == 5.0
    assert inputs["limits"]["max_price_age"] == 120.0
    assert inputs["market"]["lot_step"] == D("0.00001")
    assert inputs["sized"]["quantity"] == order.quantity
    assert inputs["signal"]["candle_time"] == CANDLE


# (case, signal side, snapshot changes, signal changes, expected reason)
CASES = [
    ("emergency stop", "SELL", {"emergency_stop": True, "emergency_reason": "ops"}, {}, RejectionReason.EMERGENCY_STOP),
    ("halted", "SELL", {"trading_state": TradingState.HALTED}, {}, RejectionReason.TRADING_HALTED),
    ("reducing blocks buys", "BUY", {"trading_state": TradingState.REDUCING}, {}, RejectionReason.REDUCING_ONLY),
    ("no price", "BUY", {"reference_price": None, "price_time": None}, {}, RejectionReason.NO_PRICE),
    ("stale price", "BUY", {"price_time": NOW - timedelta(seconds=121)}, {}, RejectionReason.STALE_PRICE),
    ("low confidence", "BUY", {}, {"confidence": 0.49}, RejectionReason.LOW_CONFIDENCE),
    ("no position to sell", "SELL", {"position": D(0)}, {}, RejectionReason.NO_POSITION),
    ("no money", "BUY", {"available_quote": D("4")}, {}, RejectionReason.INSUFFICIENT_BALANCE),
    ("max open positions", "BUY", {"open_positions": 2}, {}, RejectionReason.MAX_OPEN_POSITIONS),
    ("symbol exposure", "BUY", {"symbol_exposure": D("4500")}, {}, RejectionReason.SYMBOL_EXPOSURE_LIMIT),
    ("total exposure", "BUY", {"total_exposure": D("7500")}, {}, RejectionReason.TOTAL_EXPOSURE_LIMIT),
    ("hourly limit", "BUY", {"order_times": tuple(NOW - timedelta(minutes=m) for m in (15, 30, 45))}, {}, RejectionReason.HOURLY_ORDER_LIMIT),
    ("daily limit", "BUY", {"order_times": tuple(NOW - timedelta(hours=h) for h in (2, 3, 4, 5, 6))}, {}, RejectionReason.DAILY_ORDER_LIMIT),
    ("min interval", "BUY", {"order_times": (NOW - timedelta(minutes=5),)}, {}, RejectionReason.MIN_ORDER_INTERVAL),
    ("drawdown pause", "BUY", {"drawdown": D("0.2")}, {}, RejectionReason.DRAWDOWN_PAUSE),
    ("price collar", "BUY", {}, {"price": PRICE * D("1.006")}, RejectionReason.PRICE_COLLAR),
    ("duplicate", "BUY", {"approved_same_candle": True}, {}, RejectionReason.DUPLICATE_SIGNAL),
]


@pytest.mark.parametrize(("side", "snap_changes", "signal_changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_rejects_with_its_reason(
    side: str, snap_changes: dict[str, object], signal_changes: dict[str, object], expected: RejectionReason
) -> None:
    sig = signal(side=side, **signal_changes)  # type: ignore[arg-type]
    assert reason_of(sig, snapshot(**snap_changes)) is expected
    # The same signal passes without the breach: it is this rule and nothing else.
    assert reason_of(signal(side=side), snapshot()) is None


def test_max_order_notional_is_a_hard_ceiling() -> None:
    limits = replace(LIMITS, max_order_notional=D("100"))
    assert reason_of(signal(), snapshot(), limits) is RejectionReason.MAX_ORDER_NOTIONAL


def test_rules_that_limit_new_risk_never_trap_a_sell() -> None:
    breached = snapshot(
        open_positions=9, symbol_exposure=D("9000"), total_exposure=D("9000"), drawdown=D("0.5"),
        trading_state=TradingState.REDUCING,
    )
    decision = evaluate(signal("SELL"), breached, replace(LIMITS, max_order_notional=D("1")), SIZING, BTC)
    assert isinstance(decision.outcome, Approved)
    assert decision.outcome.order.quantity == D("0.1")


def test_adding_to_an_existing_position_does_not_count_as_a_new_one() -> None:
    assert reason_of(signal(), snapshot(open_positions=2, has_exposure=True)) is None


def test_order_of_checks_first_failure_wins() -> None:
    everything = snapshot(
        emergency_stop=True, reference_price=None, price_time=None, open_positions=9, drawdown=D("1"),
    )
    assert reason_of(signal(confidence=0.1), everything) is RejectionReason.EMERGENCY_STOP
    assert reason_of(signal(confidence=0.1), replace(everything, emergency_stop=False)) is RejectionReason.NO_PRICE
    fresh = replace(everything, emergency_stop=False, reference_price=PRICE, price_time=NOW)
    assert reason_of(signal(confidence=0.1), fresh) is RejectionReason.LOW_CONFIDENCE
    assert reason_of(signal(), fresh) is RejectionReason.MAX_OPEN_POSITIONS


def test_hold_is_ignored_whatever_the_state() -> None:
    decision = evaluate(signal("HOLD"), snapshot(emergency_stop=True), LIMITS, SIZING, BTC)
    assert isinstance(decision.outcome, Ignored)
    assert decision.inputs["signal"]["side"] is SignalSide.HOLD


def test_frequency_windows_are_measured_against_the_risk_clock() -> None:
    limits = replace(LIMITS, min_order_interval=timedelta(0))
    old = tuple(NOW - timedelta(hours=1, seconds=1) for _ in range(3))
    assert check_frequency(NOW, old, limits) is None  # outside the hour
    assert check_frequency(NOW, old[:2] + (NOW - timedelta(minutes=59),), limits) is None
    inside = tuple(NOW - timedelta(minutes=59) for _ in range(3))
    found = check_frequency(NOW, inside, limits)
    assert found is not None and found[0] is RejectionReason.HOURLY_ORDER_LIMIT


def test_collar_is_symmetric_and_inclusive_at_the_limit() -> None:
    assert check_price_collar(D("100.5"), D("100"), D("50")) is None
    assert check_price_collar(D("99.5"), D("100"), D("50")) is None
    assert check_price_collar(D("99.49"), D("100"), D("50")) is not None

"""STRATEGY_PAUSED: a paused strategy instance's BUYs are refused, its SELLs (exits) pass, and the
emergency stop and trading state are still checked first."""

from __future__ import annotations

from decimal import Decimal as D

from protocol import RejectionReason, TradingState
from tests.unit.risk_manager.test_risk_rules import reason_of, signal, snapshot

PAUSED = "by alice: news at 14:00"


def test_a_paused_strategys_buy_is_rejected_with_who_and_why() -> None:
    assert reason_of(signal("BUY"), snapshot()) is None
    assert reason_of(signal("BUY"), snapshot(strategy_paused=PAUSED)) is RejectionReason.STRATEGY_PAUSED


def test_a_paused_strategys_sell_still_passes() -> None:
    assert reason_of(signal("SELL"), snapshot(strategy_paused=PAUSED, position=D("0.5"), available_base=D("0.5"))) is None


def test_the_stop_and_the_trading_state_come_before_the_pause() -> None:
    assert reason_of(signal("BUY"), snapshot(strategy_paused=PAUSED, emergency_stop=True)) is RejectionReason.EMERGENCY_STOP
    halted = snapshot(strategy_paused=PAUSED, trading_state=TradingState.HALTED)
    assert reason_of(signal("BUY"), halted) is RejectionReason.TRADING_HALTED

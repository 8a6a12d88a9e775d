"""The live exit signal: one deterministic SELL per strategy, symbol and candle, carrying the
exit's reason and price; bus signals never carry exit fields into a decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from agents.risk_manager import outgoing
from agents.risk_manager.exit_watch import EXIT_STRATEGY, OpenEntry, exit_signal, held_from, without_exit_fields
from agents.risk_manager.exits import ExitTrigger
from infra.db.ledger import DecisionKind
from protocol import RejectionReason, SignalSide
from protocol.exits import ExitReason, ExitSettings
from tests.support.bus import make_candle

D = Decimal
ENTRY = OpenEntry("s1", "binance", "BTC/USDT", "15m", D(47000), make_candle(10).open_time,
                  ExitSettings(stop_loss=D("0.01")), "tb-x")
HIT = ExitTrigger(ExitReason.STOP_LOSS, D("46530.00"), D("46530.00"))


def test_the_same_exit_is_always_the_same_signal_and_strategies_differ() -> None:
    candle = make_candle(12)
    first = exit_signal(ENTRY, candle, HIT, source="risk_manager")
    again = exit_signal(ENTRY, make_candle(12, source="other"), HIT, source="risk_manager")
    assert first.message_id == again.message_id
    other = exit_signal(replace(ENTRY, strategy_id="s2", opening_order="tb-y"), candle, HIT, source="risk_manager")
    later = exit_signal(ENTRY, make_candle(13), HIT, source="risk_manager")
    assert len({first.message_id, other.message_id, later.message_id}) == 3
    assert (first.side, first.strategy, first.exit_reason, first.exit_price, first.price) == (
        SignalSide.SELL, EXIT_STRATEGY, ExitReason.STOP_LOSS, HIT.price, HIT.price)
    assert first.candle_time == candle.open_time and first.exits == ENTRY.exits
    assert "STOP_LOSS" in first.reason and "stop_loss=0.01" in first.reason


def test_the_first_held_candle_follows_the_entry_signals_candle() -> None:
    assert held_from(ENTRY) == make_candle(11).open_time == datetime(2021, 9, 1, 2, 45, tzinfo=UTC)


def test_bus_signals_lose_exit_fields() -> None:
    forged = exit_signal(ENTRY, make_candle(12), HIT, source="strategy")
    plain = without_exit_fields(forged)
    assert plain.exit_reason is None and plain.exit_price is None and plain.exits == ENTRY.exits
    assert without_exit_fields(plain) is plain


def test_an_exits_rejection_and_audit_record_carry_its_reason() -> None:
    exit_sell = exit_signal(ENTRY, make_candle(12), HIT, source="risk_manager")
    refused = outgoing.rejection(exit_sell, RejectionReason.BELOW_MIN_NOTIONAL, "too small", source="risk_manager")
    record = outgoing.audit_record(exit_sell, DecisionKind.REJECTED, "too small", {}, decided_at=exit_sell.candle_time,
                                   reason=RejectionReason.BELOW_MIN_NOTIONAL, output=refused)
    assert refused.exit_reason is ExitReason.STOP_LOSS and record.exit_reason == "STOP_LOSS"
    assert record.output is not None and record.output["exit_reason"] == "STOP_LOSS"

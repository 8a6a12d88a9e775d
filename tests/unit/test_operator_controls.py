"""Operator controls: validation of the control messages and of the one builder (agents.ops.controls)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agents.ops.controls import ControlInvalid, ControlKind, build_control, describe
from protocol import CancelOrder, ClosePosition, EmergencyStop, PauseStrategy, decode_any, encode, topic_for
from protocol.messages.control import control_kind, control_target, requested_by


def _build(kind: ControlKind, **fields: str) -> object:
    return build_control(kind, reason="because", requested_by="alice", source="api", **fields)


@pytest.mark.parametrize(
    ("kind", "fields", "cls", "target", "topic"),
    [
        (ControlKind.ENGAGE_STOP, {}, EmergencyStop, "*", "control.emergency_stop"),
        (ControlKind.RELEASE_STOP, {}, EmergencyStop, "*", "control.emergency_stop.release"),
        (ControlKind.CANCEL_ORDER, {"client_order_id": "tb-abc"}, CancelOrder, "tb-abc", "control.order.cancel"),
        (ControlKind.PAUSE_STRATEGY, {"strategy_id": "rsi-btc"}, PauseStrategy, "rsi-btc", "control.strategy.pause"),
        (ControlKind.RESUME_STRATEGY, {"strategy_id": "rsi-btc"}, PauseStrategy, "rsi-btc", "control.strategy.pause"),
        (ControlKind.CLOSE_POSITION, {"strategy_id": "rsi-btc", "symbol": "btc/usdt"}, ClosePosition,
         "rsi-btc * BTC/USDT", "control.position.close"),
    ],
)
def test_each_kind_builds_its_message(kind: ControlKind, fields: dict[str, str], cls: type, target: str, topic: str) -> None:
    message = _build(kind, **fields)
    assert type(message) is cls
    assert control_kind(message) == kind.value  # type: ignore[arg-type]
    assert control_target(message) == target  # type: ignore[arg-type]
    assert requested_by(message) == "alice"  # type: ignore[arg-type]
    assert topic_for(message) == topic  # type: ignore[arg-type]
    assert decode_any(encode(message)) == message  # type: ignore[arg-type]
    assert str(message.message_id) in describe(message)  # type: ignore[arg-type, attr-defined]


def test_each_build_is_a_new_request() -> None:
    first, second = (_build(ControlKind.PAUSE_STRATEGY, strategy_id="x") for _ in range(2))
    assert first.message_id != second.message_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "fields", "says"),
    [
        (ControlKind.CANCEL_ORDER, {}, "client order id"),
        (ControlKind.PAUSE_STRATEGY, {"strategy_id": "  "}, "strategy id"),
        (ControlKind.CLOSE_POSITION, {"strategy_id": "rsi"}, "symbol"),
        (ControlKind.CLOSE_POSITION, {"strategy_id": "rsi", "symbol": "BTCUSDT"}, "symbol"),
        (ControlKind.PAUSE_STRATEGY, {"strategy_id": "Bad.Id"}, "strategy_id"),
        (ControlKind.CANCEL_ORDER, {"client_order_id": "x" * 37}, "client_order_id"),
    ],
)
def test_missing_or_invalid_targets_are_refused_with_the_reason(kind: ControlKind, fields: dict[str, str], says: str) -> None:
    with pytest.raises(ControlInvalid, match=says):
        _build(kind, **fields)


def test_reason_and_requester_are_required() -> None:
    with pytest.raises(ControlInvalid, match="reason"):
        build_control(ControlKind.ENGAGE_STOP, reason="   ", requested_by="alice")
    with pytest.raises(ControlInvalid, match="requested_by"):
        build_control(ControlKind.PAUSE_STRATEGY, strategy_id="rsi", reason="r", requested_by="")
    with pytest.raises(ControlInvalid, match="unknown control"):
        build_control("FLATTEN_EVERYTHING", reason="r", requested_by="a")


def test_a_cancel_without_requested_by_still_decodes() -> None:
    """The field was added to control.order.cancel/1: a cancel published before it (or by the risk
    manager's reconciliation) decodes, and the requester recorded is its source."""
    old = CancelOrder(source="risk_manager", client_order_id="tb-1", reason="expired")
    wire = json.loads(encode(old))
    del wire["requested_by"]
    decoded = decode_any(json.dumps(wire).encode())
    assert isinstance(decoded, CancelOrder) and decoded.requested_by is None
    assert requested_by(decoded) == "risk_manager"


def test_control_messages_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        PauseStrategy(source="api", strategy_id="s", paused=True, reason="r", requested_by="a", quantity="1")  # type: ignore[call-arg]


def test_a_close_becomes_the_same_sell_signal_however_often_it_is_delivered() -> None:
    from agents.risk_manager.operator import OPERATOR_CLOSE, close_signal
    from protocol import SignalSide
    from tests.support.bus import make_candle

    close = _build(ControlKind.CLOSE_POSITION, strategy_id="rsi-btc", symbol="BTC/USDT")
    candle = make_candle(7)
    first, again = close_signal(close, candle), close_signal(close, candle)  # type: ignore[arg-type]
    assert first.message_id == again.message_id and first.causation_id == close.message_id  # type: ignore[attr-defined]
    assert (first.side, first.strategy_id, first.strategy) == (SignalSide.SELL, "rsi-btc", OPERATOR_CLOSE)
    assert (first.candle_time, first.price, first.exchange) == (candle.open_time, candle.close, candle.exchange)
    assert first.reason == "operator close by alice: because"

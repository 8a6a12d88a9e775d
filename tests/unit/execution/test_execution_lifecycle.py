"""Execution's pure decisions: transitions from exchange answers, reports, and the live opt-in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from agents.execution.lifecycle import Recorded, next_transition, report_for
from agents.execution.settings import LIVE_CONFIRMATION, ExecutionSettings, refusal_reason
from infra.exchanges.adapter import Fill, OrderState
from protocol import OrderRequest, OrderStatus, client_order_id_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def order() -> OrderRequest:
    signal = uuid.UUID(int=7)
    return OrderRequest(
        source="risk_manager", signal_id=signal, client_order_id=client_order_id_for(signal), strategy_id="sma",
        exchange="binance", symbol="BTC/USDT", side="BUY", order_type="MARKET", quantity=D("0.01"),
        reference_price=D("47000"), reference_time=T0, reserved_asset="USDT", reserved_amount=D("480"), expires_at=T0 + timedelta(minutes=5),
    )


def state(status: OrderStatus, filled: str = "0", avg: str | None = None, fills: tuple[Fill, ...] = ()) -> OrderState:
    return OrderState(order().client_order_id, "BTC/USDT", status, D("0.01"), D(filled), D(avg) if avg else None, T0,
                      exchange_order_id="x-1", fills=fills)


def recorded(status: OrderStatus, filled: str = "0", avg: str | None = None, fees: str = "0", reported: bool = True) -> Recorded:
    return Recorded(status, D(filled), D(avg) if avg else None, {"USDT": D(fees)} if D(fees) else {}, reported)


def fill(i: int, qty: str, price: str, fee: str) -> Fill:
    return Fill(f"t{i}", D(qty), D(price), D(fee), "USDT", T0)


def test_partial_then_full_fill_reports_the_increments() -> None:
    first = next_transition(recorded(OrderStatus.NEW), state(OrderStatus.PARTIALLY_FILLED, "0.004", "47000",
                                                             (fill(1, "0.004", "47000", "0.188"),)))
    assert first is not None
    assert (first.last_fill_quantity, first.last_fill_price, first.fee, first.trade_id) == (D("0.004"), D("47000"), D("0.188"), "t1")
    second = next_transition(
        recorded(OrderStatus.PARTIALLY_FILLED, "0.004", "47000", "0.188"),
        state(OrderStatus.FILLED, "0.01", "47006", (fill(1, "0.004", "47000", "0.188"), fill(2, "0.006", "47010", "0.28206"))),
    )
    assert second is not None and second.status is OrderStatus.FILLED
    assert second.last_fill_quantity == D("0.006")
    assert second.last_fill_price == D("47010")  # (47006*0.01 - 47000*0.004) / 0.006
    assert second.fee == D("0.28206") and second.fee_currency == "USDT" and second.trade_id == "t2"


def test_stale_or_repeated_answers_are_no_transition() -> None:
    assert next_transition(recorded(OrderStatus.NEW), state(OrderStatus.NEW)) is None
    assert next_transition(recorded(OrderStatus.FILLED, "0.01", "47000"), state(OrderStatus.NEW)) is None
    assert next_transition(recorded(OrderStatus.PARTIALLY_FILLED, "0.004", "47000"), state(OrderStatus.NEW)) is None
    assert next_transition(recorded(OrderStatus.NEW), state(OrderStatus.UNKNOWN)) is None
    # The placeholder of an unsubmitted order reports its first state, even UNKNOWN.
    assert next_transition(recorded(OrderStatus.UNKNOWN, reported=False), state(OrderStatus.UNKNOWN)) is not None
    assert next_transition(recorded(OrderStatus.UNKNOWN), state(OrderStatus.NEW)) is not None


def test_report_ids_are_deterministic_per_transition() -> None:
    t = next_transition(recorded(OrderStatus.NEW), state(OrderStatus.FILLED, "0.01", "47023.88", (fill(1, "0.01", "47023.88", "0.4702388"),)))
    assert t is not None
    request = order()
    a, b = report_for(request, 2, t, "execution"), report_for(request, 2, t, "execution")
    assert a.message_id == b.message_id and a.causation_id == request.message_id
    assert a.correlation_id == request.correlation_id
    assert report_for(request, 3, t, "execution").message_id != a.message_id
    assert (a.cumulative_filled_quantity, a.last_fill_price, a.fee, a.fee_currency) == (D("0.01"), D("47023.88"), D("0.4702388"), "USDT")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, None),
        ({"TRADING_MODE": "live", "EXCHANGE_API_KEY": "k", "EXCHANGE_API_SECRET": "s"}, "LIVE_TRADING_CONFIRM"),
        ({"TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": "yes", "EXCHANGE_API_KEY": "k", "EXCHANGE_API_SECRET": "s"}, "LIVE_TRADING_CONFIRM"),
        ({"TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": LIVE_CONFIRMATION}, "EXCHANGE_API_KEY and EXCHANGE_API_SECRET"),
        ({"TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": LIVE_CONFIRMATION, "EXCHANGE_API_KEY": "k", "EXCHANGE_API_SECRET": "s"}, None),
        ({"TRADING_MODE": "sandbox"}, "EXCHANGE_API_KEY"),
        ({"TRADING_MODE": "sandbox", "EXCHANGE_API_KEY": "k", "EXCHANGE_API_SECRET": "s"}, None),
    ],
)
def test_live_trading_needs_mode_confirmation_and_keys(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str | None) -> None:
    for name in ("TRADING_MODE", "LIVE_TRADING_CONFIRM", "EXCHANGE_API_KEY", "EXCHANGE_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reason = refusal_reason(ExecutionSettings(_env_file=None))  # type: ignore[call-arg]
    if problem is None:
        assert reason is None
    else:
        assert reason is not None and problem in reason
        assert "k" not in reason.replace("keys", "").replace("KEY", "").lower().split()  # no key value in the text

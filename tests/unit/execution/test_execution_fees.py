"""Fees are kept per currency: a BNB or base-asset fee is never added to a USDT fee, and fills
that paid fees in two currencies become one transition per currency (each report carries one
fee and its currency)."""

from __future__ import annotations

from decimal import Decimal as D

from agents.execution.lifecycle import Recorded, fees_after, fees_of, next_transition
from infra.exchanges.adapter import Fill
from protocol import OrderStatus
from tests.unit.execution.test_execution_lifecycle import T0, state


def fill(i: int, qty: str, price: str, fee: str, currency: str) -> Fill:
    return Fill(f"t{i}", D(qty), D(price), D(fee), currency, T0)


def test_fills_paying_fees_in_two_currencies_are_two_transitions_each_with_its_own_fee() -> None:
    answer = state(OrderStatus.FILLED, "0.01", "47006", (
        fill(1, "0.004", "47000", "0.188", "USDT"),
        fill(2, "0.006", "47010", "0.0005", "BNB"),
    ))
    first = next_transition(Recorded(OrderStatus.NEW, D(0), None, {}, True), answer)
    assert first is not None
    assert (first.status, first.cumulative_filled, first.last_fill_quantity) == (OrderStatus.PARTIALLY_FILLED, D("0.004"), D("0.004"))
    assert (first.fee, first.fee_currency, first.trade_id, first.last_fill_price) == (D("0.188"), "USDT", "t1", D("47000"))
    fees = fees_after({}, first)
    assert fees == {"USDT": "0.188"}
    second = next_transition(Recorded(first.status, first.cumulative_filled, first.average_price, fees_of(fees), True), answer)
    assert second is not None
    assert (second.status, second.cumulative_filled, second.last_fill_quantity) == (OrderStatus.FILLED, D("0.01"), D("0.006"))
    assert (second.fee, second.fee_currency, second.trade_id) == (D("0.0005"), "BNB", "t2")
    assert second.last_fill_price == D("47010")
    assert fees_after(fees, second) == {"BNB": "0.0005", "USDT": "0.188"}
    done = Recorded(second.status, second.cumulative_filled, second.average_price, fees_of(fees_after(fees, second)), True)
    assert next_transition(done, answer) is None


def test_a_later_fill_in_another_currency_owes_only_its_own_fee() -> None:
    # 0.188 USDT was reported with the first fill; the second fill paid in BTC (the base asset).
    recorded = Recorded(OrderStatus.PARTIALLY_FILLED, D("0.004"), D("47000"), {"USDT": D("0.188")}, True)
    answer = state(OrderStatus.FILLED, "0.01", "47006", (
        fill(1, "0.004", "47000", "0.188", "USDT"),
        fill(2, "0.006", "47010", "0.000006", "BTC"),
    ))
    t = next_transition(recorded, answer)
    assert t is not None and t.status is OrderStatus.FILLED
    # Today's code subtracts the USDT already paid from a BTC sum: max(0.188006 - 0.188, 0) in "BTC".
    assert (t.fee, t.fee_currency) == (D("0.000006"), "BTC")

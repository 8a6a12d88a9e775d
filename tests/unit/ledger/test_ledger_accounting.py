"""Pure position accounting: weighted entry, realised PnL, fees in quote and in base."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.db.ledger import LedgerError, PositionView, jsonable, position_update
from infra.db.ledger.accounting import FLAT, buy, pay_base_fee, pay_quote_fee, sell

D = Decimal


def test_buys_average_and_sells_realise_against_the_average() -> None:
    state = buy(FLAT, D("2"), D("200"))  # 2 @ 100
    state = buy(state, D("1"), D("130"))  # 1 @ 130 -> (200 + 130) / 3 = 110
    assert state.average_entry_price == D("110") and state.quantity == D("3")
    state = sell(state, D("1"), D("125"))  # (125 - 110) * 1
    assert (state.quantity, state.average_entry_price, state.realised_pnl) == (D("2"), D("110"), D("15"))
    state = sell(state, D("2"), D("200"))  # (100 - 110) * 2
    assert (state.quantity, state.average_entry_price, state.realised_pnl) == (D("0"), None, D("-5"))
    state = buy(state, D("0.5"), D("50"))  # a new position starts from its own price
    assert state.average_entry_price == D("100") and state.realised_pnl == D("-5")


def test_fees_never_touch_realised_pnl_and_base_fees_are_disposals() -> None:
    state = pay_quote_fee(buy(FLAT, D("1"), D("100")), D("0.1"))
    assert (state.realised_pnl, state.fees_paid) == (D("0"), D("0.1"))
    state = pay_base_fee(state, D("0.01"), D("120"))  # 0.01 BTC worth 1.2 at the fill price
    assert (state.quantity, state.average_entry_price) == (D("0.99"), D("100"))
    assert (state.realised_pnl, state.fees_paid) == (D("0.2"), D("1.3"))


def test_refusals() -> None:
    with pytest.raises(LedgerError, match="holds only 1"):
        sell(buy(FLAT, D("1"), D("100")), D("1.5"), D("150"))
    with pytest.raises(LedgerError):
        sell(FLAT, D("1"), D("1"))
    with pytest.raises(LedgerError):
        buy(FLAT, D("0"), D("1"))
    with pytest.raises(LedgerError):
        pay_quote_fee(FLAT, D("-1"))


amounts = st.integers(min_value=1, max_value=10_000).map(lambda n: D(n) / 100)


@given(st.lists(st.tuples(amounts, amounts, amounts, st.sampled_from(["quote", "base"])), min_size=1, max_size=6),
       amounts)
def test_closed_position_pnl_minus_fees_is_the_cash_result(trades: list[tuple[D, D, D, str]], exit_price: D) -> None:
    """Whatever the fees' currency, realised - fees == quote received - quote spent once flat."""
    state, cash = FLAT, D(0)
    for quantity, price, fee_fraction, currency in trades:
        state = buy(state, quantity, quantity * price)
        cash -= quantity * price
        if currency == "quote":
            fee = quantity * price * fee_fraction / 10_000
            state, cash = pay_quote_fee(state, fee), cash - fee
        else:
            state = pay_base_fee(state, quantity * fee_fraction / 10_000, price)  # fewer coins received
    cash += state.quantity * exit_price
    state = sell(state, state.quantity, state.quantity * exit_price)
    assert state.quantity == 0 and state.average_entry_price is None
    # Equal up to the rounding of the average entry price (28 significant digits).
    assert abs((state.realised_pnl - state.fees_paid) - cash) < D("1e-15")


def test_position_update_without_parent_and_jsonable() -> None:
    view = PositionView("s", "paper", "BTC/USDT", D("0"), None, D("-1.5"), D("0.2"))
    update = position_update(view, source="risk_manager")
    assert update.quantity == 0 and update.average_entry_price is None and update.unrealised_pnl is None
    assert update.realised_pnl == D("-1.5")
    assert jsonable({"a": D("1.10"), "b": [D("2")], "c": None}) == {"a": "1.10", "b": ["2"], "c": None}
    with pytest.raises(TypeError):
        jsonable({"x": object()})

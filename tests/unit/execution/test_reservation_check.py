"""The reservation check: only a HELD reservation with exactly the request's terms lets an
order through."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from agents.execution.guard import check_reservation
from infra.db.ledger import ReservationStatus, ReservationView
from protocol import OrderRefusal, OrderRequest
from tests.support.orders import make_order


def held_for(order: OrderRequest, **changes: object) -> ReservationView:
    now = datetime.now(UTC)
    fields: dict[str, object] = dict(
        id=1, client_order_id=order.client_order_id, signal_id=order.signal_id, strategy_id=order.strategy_id,
        exchange=order.exchange, symbol=order.symbol, side=order.side, asset=order.reserved_asset,
        amount=order.reserved_amount, remaining=order.reserved_amount, quantity=order.quantity,
        status=ReservationStatus.HELD, filled_quantity=D(0), filled_quote=D(0), last_report_status=None,
        created_at=now, expires_at=order.expires_at, updated_at=now,
    )
    fields.update(changes)
    return ReservationView(**fields)  # type: ignore[arg-type]


def test_the_reserved_order_passes() -> None:
    order = make_order(quantity="0.0100")
    assert check_reservation(order, held_for(order, quantity=D("0.01"))) is None  # equal Decimals


def test_no_reservation_is_refused() -> None:
    refusal = check_reservation(make_order(), None)
    assert refusal is not None and refusal.code is OrderRefusal.NO_RESERVATION
    assert refusal.reason.startswith("NO_RESERVATION: ")


@pytest.mark.parametrize("status", [s for s in ReservationStatus if s is not ReservationStatus.HELD])
def test_a_reservation_that_is_not_held_is_refused(status: ReservationStatus) -> None:
    order = make_order()
    refusal = check_reservation(order, held_for(order, status=status))
    assert refusal is not None and refusal.code is OrderRefusal.RESERVATION_NOT_HELD and status.value in refusal.detail


@pytest.mark.parametrize(
    ("field", "request_value", "reserved"),
    [
        ("reserved_amount", D("5000"), {"amount": D("1000")}),
        ("quantity", D("0.05"), {"quantity": D("0.01")}),
        ("side", "SELL", {}),
        ("symbol", "ETH/USDT", {}),
        ("strategy_id", "forged", {}),
    ],
)
def test_any_difference_from_the_reservation_is_refused(field: str, request_value: object, reserved: dict[str, object]) -> None:
    order = make_order(quantity="0.01")
    if field in ("side", "symbol"):
        forged = make_order(quantity="0.01", **{field: request_value})  # type: ignore[arg-type]
        reservation = held_for(order, client_order_id=forged.client_order_id, signal_id=forged.signal_id,
                               expires_at=forged.expires_at)
        order = forged
    else:
        reservation = held_for(order, **reserved)
        order = order.model_copy(update={field: request_value})
    refusal = check_reservation(order, reservation)
    assert refusal is not None and refusal.code is OrderRefusal.RESERVATION_MISMATCH
    assert field in refusal.detail

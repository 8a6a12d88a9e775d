"""Only the risk manager can cause an order: the reservation check (pure, no I/O).

The risk manager commits an approval's reservation (HELD) in the ledger BEFORE it publishes the
OrderRequest, and execution shares that Postgres database. So a request whose reservation is
missing, closed, or says something else (side, symbol, amount ...) was not decided by the risk
manager: it is refused with a reason code and never reaches the exchange. Checked in the same
transaction that claims the order (agents.execution.store), with the reservation row locked
FOR SHARE so it cannot be released between the check and the claim.
"""

from __future__ import annotations

from typing import NamedTuple

from infra.db.ledger import ReservationStatus, ReservationView
from protocol import OrderRefusal, OrderRequest

__all__ = ["Refusal", "check_reservation"]


class Refusal(NamedTuple):
    """Why a request must not be placed."""

    code: OrderRefusal
    detail: str

    @property
    def reason(self) -> str:
        return self.code.reason(self.detail)


def check_reservation(request: OrderRequest, reservation: ReservationView | None) -> Refusal | None:
    """None when ``reservation`` is HELD for exactly this request; otherwise the refusal."""
    if reservation is None:
        return Refusal(OrderRefusal.NO_RESERVATION, f"the ledger holds no reservation for {request.client_order_id}")
    if reservation.status is not ReservationStatus.HELD:
        return Refusal(
            OrderRefusal.RESERVATION_NOT_HELD,
            f"the reservation of {request.client_order_id} is {reservation.status.value}, not HELD",
        )
    expected = {
        "signal_id": reservation.signal_id,
        "strategy_id": reservation.strategy_id,
        "exchange": reservation.exchange,
        "symbol": reservation.symbol,
        "side": reservation.side,
        "quantity": reservation.quantity,
        "reserved_asset": reservation.asset,
        "reserved_amount": reservation.amount,
        "expires_at": reservation.expires_at,
    }
    differences = [
        f"{field} {getattr(request, field)} (reserved: {value})"
        for field, value in expected.items()
        if getattr(request, field) != value
    ]
    if differences:
        return Refusal(OrderRefusal.RESERVATION_MISMATCH, "; ".join(differences))
    return None

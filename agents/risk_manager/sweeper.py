"""The risk manager's expiry sweeper: what becomes of a reservation whose order outlived its TTL.

A reservation whose order is known terminal is released (or settled, when something filled);
for the others the order may have reached the exchange (no report, NEW, PARTIALLY_FILLED,
UNKNOWN), so the balance stays held and execution is asked to settle the order's fate — at most
once per ``reconcile_interval`` per order. Run by the instance holding the duty lease (0031).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from infra.db.ledger import DecisionKind, Ledger, ReservationStatus, ReservationView
from infra.logging import get_logger
from protocol import CancelOrder, Message, OrderRequest, OrderStatus

__all__ = ["ExpirySweeper"]

_log = get_logger(component="expiry-sweeper")


class ExpirySweeper:
    def __init__(self, ledger: Ledger, publish: Callable[[Message | None], Awaitable[None]], *, source: str,
                 reconcile_interval: float) -> None:
        self._ledger, self._publish, self._source, self._interval = ledger, publish, source, reconcile_interval
        # client order id -> when execution was last asked (monotonic); a report clears it.
        self.asked: dict[str, float] = {}

    async def sweep(self) -> int:
        """One round; the number of expired reservations still waiting for execution."""
        waiting = 0
        for reservation in await self._ledger.expired_reservations(datetime.now(UTC)):
            status = _report_status(reservation)
            if status is not None and status.is_terminal:
                closing = ReservationStatus.SETTLED if reservation.filled_quantity > 0 else ReservationStatus.RELEASED
                await self._ledger.release(reservation.client_order_id, closing)
                self.asked.pop(reservation.client_order_id, None)
                continue
            waiting += 1
            await self._ask_reconcile(reservation, status)
        return waiting

    async def _ask_reconcile(self, reservation: ReservationView, status: OrderStatus | None) -> None:
        # A cancel makes execution settle the order's fate: cancel it if open, or report its
        # final state; that report releases the reservation.
        last = self.asked.get(reservation.client_order_id)
        if last is not None and time.monotonic() - last < self._interval:
            return
        self.asked[reservation.client_order_id] = time.monotonic()
        _log.warning("reservation expired, asking execution to reconcile",
                     client_order_id=reservation.client_order_id, last_status=status.value if status else None)
        if status is None:
            # No report at all: the request may never have reached execution (dead-lettered,
            # unroutable, purged, lost with the broker's disk). The audited request again, with
            # its own deterministic id: execution records it EXPIRED without placing it (or
            # knows it already and ignores the duplicate), and that report releases the balance.
            decision = await self._ledger.decision(reservation.signal_id)
            if decision is not None and decision.decision is DecisionKind.APPROVED and decision.output is not None:
                await self._publish(OrderRequest.model_validate(decision.output))
        await self._publish(CancelOrder(
            source=self._source, client_order_id=reservation.client_order_id,
            reason=f"reservation expired at {reservation.expires_at.isoformat()}; cancel or report the final state",
        ))


def _report_status(reservation: ReservationView) -> OrderStatus | None:
    return OrderStatus(reservation.last_report_status) if reservation.last_report_status else None

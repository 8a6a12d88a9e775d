"""Order lifecycle decisions, pure: which exchange answers are transitions, and what they report.

An adapter answers with the cumulative ``OrderState`` of an order. Comparing it with what was
recorded gives at most one transition: the increase of the filled quantity is the "last fill",
its price follows from the two averages, its fee from the fills' fees. An answer that is older
than what is recorded (less filled, or an open status after a terminal one) is no transition,
so answers arriving out of order (a placement reply after the candle that filled the order)
never move an order backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from infra.exchanges.adapter import OrderState
from protocol import ExecutionReport, OrderRequest, OrderStatus

__all__ = ["Recorded", "Transition", "next_transition", "report_for", "status_rank"]

_ZERO = Decimal(0)


def status_rank(status: OrderStatus) -> int:
    """Order of progress: UNKNOWN < NEW < PARTIALLY_FILLED < any terminal status."""
    if status.is_terminal:
        return 3
    return {OrderStatus.UNKNOWN: 0, OrderStatus.NEW: 1, OrderStatus.PARTIALLY_FILLED: 2}[status]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the orders row says about an order."""

    status: OrderStatus
    filled: Decimal
    average_price: Decimal | None
    fees: Decimal
    reported: bool  # at least one transition exists (the row is more than a placeholder)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of an order, as stored in order_events and published as a report."""

    status: OrderStatus
    cumulative_filled: Decimal
    last_fill_quantity: Decimal
    last_fill_price: Decimal | None
    average_price: Decimal | None
    fee: Decimal
    fee_currency: str | None
    trade_id: str | None
    exchange_order_id: str | None
    reason: str | None
    event_time: datetime


def next_transition(recorded: Recorded, state: OrderState) -> Transition | None:
    """The transition ``state`` makes from ``recorded``, or None when it changes nothing."""
    if recorded.status.is_terminal:
        return None
    if state.filled < recorded.filled:
        return None  # an older answer than what we already know
    unchanged = state.status is recorded.status and state.filled == recorded.filled
    if recorded.reported and unchanged:
        return None
    if recorded.reported and state.filled == recorded.filled and status_rank(state.status) < status_rank(recorded.status):
        return None
    delta = state.filled - recorded.filled
    last_price: Decimal | None = None
    fee, fee_currency, trade_id = _ZERO, None, None
    if delta > _ZERO:
        if state.average_price is None:
            raise ValueError(f"order {state.client_order_id} reports a fill without an average price")
        before = (recorded.average_price or _ZERO) * recorded.filled
        last_price = (state.average_price * state.filled - before) / delta
        if state.fills:
            fee = max(sum((f.fee for f in state.fills), _ZERO) - recorded.fees, _ZERO)
            fee_currency = state.fills[-1].fee_currency if fee > _ZERO else None
            trade_id = state.fills[-1].trade_id
    return Transition(
        status=state.status,
        cumulative_filled=state.filled,
        last_fill_quantity=delta,
        last_fill_price=last_price,
        average_price=state.average_price if state.filled > _ZERO else None,
        fee=fee,
        fee_currency=fee_currency,
        trade_id=trade_id,
        exchange_order_id=state.exchange_order_id,
        reason=state.reason,
        event_time=state.event_time,
    )


def report_for(request: OrderRequest, seq: int, t: Transition, source: str) -> ExecutionReport:
    """The execution report of transition ``seq`` of ``request``; the same transition always
    gets the same message id, so re-publishing it is a harmless duplicate."""
    return ExecutionReport.caused_by(
        request,
        id_parts=(str(seq),),
        source=source,
        client_order_id=request.client_order_id,
        exchange_order_id=t.exchange_order_id,
        strategy_id=request.strategy_id,
        exchange=request.exchange,
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        status=t.status,
        quantity=request.quantity,
        cumulative_filled_quantity=t.cumulative_filled,
        last_fill_quantity=t.last_fill_quantity,
        last_fill_price=t.last_fill_price,
        average_price=t.average_price,
        fee=t.fee,
        fee_currency=t.fee_currency,
        trade_id=t.trade_id,
        reason=t.reason[:2000] if t.reason else None,
        event_time=t.event_time,
    )

"""Order lifecycle decisions, pure: which exchange answers are transitions, and what they report.

An adapter answers with the cumulative ``OrderState`` of an order. Comparing it with what was
recorded gives at most one transition: the increase of the filled quantity is the "last fill",
its price follows from the two averages, its fee from the fills' fees. Fees are kept per
currency: a report carries one fee and its currency, so when the new fills paid fees in two
currencies (USDT, then BNB) the answer becomes several transitions, one per run of fills in
one currency, each a PARTIALLY_FILLED step until the last. An answer that is older
than what is recorded (less filled, or an open status after a terminal one) is no transition,
so answers arriving out of order (a placement reply after the candle that filled the order)
never move an order backwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from infra.exchanges.adapter import Fill, OrderState
from protocol import ExecutionReport, OrderRequest, OrderStatus

__all__ = ["Recorded", "Transition", "fees_after", "fees_of", "next_transition", "report_for", "status_rank"]

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
    fees: Mapping[str, Decimal]  # paid so far, per currency
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
    status, filled, average = state.status, state.filled, state.average_price
    if delta > _ZERO:
        if state.average_price is None:
            raise ValueError(f"order {state.client_order_id} reports a fill without an average price")
        before = (recorded.average_price or _ZERO) * recorded.filled
        owed = _owed_fees(state.fills, recorded.fees)
        run = _first_currency_run(state.fills, recorded.filled) if len(owed) > 1 else None
        split = run is not None and sum((f.quantity for f in run), _ZERO) < delta
        if run is not None and split:
            # Only the first run of one fee currency; the rest follows as the next transition.
            filled = recorded.filled + sum((f.quantity for f in run), _ZERO)
            average = (before + sum((f.quantity * f.price for f in run), _ZERO)) / filled
            status = OrderStatus.PARTIALLY_FILLED
            fee_currency = next((f.fee_currency for f in run if f.fee > _ZERO), None)
            fee = sum((f.fee for f in run if f.fee_currency == fee_currency), _ZERO)
        elif state.fills:
            # One currency owed (the normal case), or fills that do not line up with the
            # quantities: the currency of the newest fee; any other stays owed for a later fill.
            fee_currency = next((f.fee_currency for f in reversed(state.fills) if f.fee > _ZERO and f.fee_currency in owed), None)
            fee = owed.get(fee_currency, _ZERO) if fee_currency is not None else _ZERO
        delta = filled - recorded.filled
        last_price = (average * filled - before) / delta
        if fee == _ZERO:
            fee_currency = None
        trades = run if run is not None and split else state.fills
        trade_id = trades[-1].trade_id if trades else None
    return Transition(
        status=status,
        cumulative_filled=filled,
        last_fill_quantity=delta,
        last_fill_price=last_price,
        average_price=average if filled > _ZERO else None,
        fee=fee,
        fee_currency=fee_currency,
        trade_id=trade_id,
        exchange_order_id=state.exchange_order_id,
        reason=state.reason,
        event_time=state.event_time,
    )


def _owed_fees(fills: Sequence[Fill], paid: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Fees the fills carry beyond what was already reported, per currency (positive only)."""
    totals: dict[str, Decimal] = {}
    for f in fills:
        if f.fee > _ZERO and f.fee_currency is not None:
            totals[f.fee_currency] = totals.get(f.fee_currency, _ZERO) + f.fee
    return {c: t - paid.get(c, _ZERO) for c, t in totals.items() if t > paid.get(c, _ZERO)}


def _first_currency_run(fills: Sequence[Fill], recorded_filled: Decimal) -> list[Fill] | None:
    """The new fills (past ``recorded_filled``, in exchange order) up to the first change of
    fee currency; None when the fills do not start exactly at the recorded quantity."""
    seen, new = _ZERO, []
    for f in fills:
        if seen >= recorded_filled:
            new.append(f)
        seen += f.quantity
    if sum((f.quantity for f in new), _ZERO) != seen - recorded_filled:
        return None
    run: list[Fill] = []
    currency: str | None = None
    for f in new:
        if f.fee > _ZERO and f.fee_currency is not None:
            if currency is not None and f.fee_currency != currency:
                break
            currency = f.fee_currency
        run.append(f)
    return run or None


def fees_of(stored: Mapping[str, str] | None) -> dict[str, Decimal]:
    """The per-currency fees of an orders row (JSON text decimals) as Decimals."""
    return {currency: Decimal(amount) for currency, amount in (stored or {}).items()}


def fees_after(stored: Mapping[str, str] | None, t: Transition) -> dict[str, str]:
    """The orders row's per-currency fees after ``t`` (JSON-ready: text decimals)."""
    fees = fees_of(stored)
    if t.fee > _ZERO and t.fee_currency is not None:
        fees[t.fee_currency] = fees.get(t.fee_currency, _ZERO) + t.fee
    return {currency: str(amount) for currency, amount in sorted(fees.items())}


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
        exit_reason=request.exit_reason,
    )

"""Settlement of execution reports into balances, reservations, positions and fills.

Rules (one transaction per report; any refusal raises LedgerError and changes nothing):

1. Idempotent by message id: the report's ``message_id`` is claimed first; a redelivery is a
   no-op (``applied=False``).
2. Quantities and cost settle by the *increase of the cumulative filled quantity* over what the
   reservation already settled. A duplicated fill (same cumulative, other message id) or an
   older report arriving after a newer one (PARTIALLY_FILLED after FILLED) settles nothing.
   The quote value of the increase is ``last_fill_quantity * last_fill_price`` when the report
   announces exactly that increase (the normal case, exact), otherwise
   ``cumulative * average_price - quote already settled`` (a report was skipped or re-ordered).
3. BUY: the cost is taken from the reservation (quote, reserved), the base is credited.
   SELL: the base is taken from the reservation (base, reserved), the proceeds are credited.
   If the cost exceeds what the reservation still holds (slippage beyond the risk manager's
   buffer, or a late fill after the reservation was closed), the excess comes from the
   asset's available balance; what that cannot cover either is a *shortfall*: the fill is
   still booked (it happened at the exchange), the balance goes to zero instead of negative,
   and the outcome names the shortfall (the Ledger then halts new BUYs, see ``Ledger``).
4. Fees are charged once per exchange trade: the fill row is unique per (exchange, symbol,
   trade_id) (trade ids are per market)
   (a report without trade_id gets ``"{client_order_id}:{cumulative}"``), and the fee is
   charged only when that row is new, so a re-ordered report still pays its own fee. A fee in
   the reservation's asset is taken from what it still holds first, then from available; a fee
   in any other asset (base for a BUY, quote for a SELL, or a third asset such as BNB) from
   that asset's available balance; what it cannot cover (an asset the ledger does not hold)
   is a shortfall, as above. Fees count in the position's
   ``fees_paid`` in quote (base fees valued at the fill price, see ``accounting``); a third-asset
   fee cannot be valued without a price, so it is only in the balances and the fills table.
5. A report of an order the ledger never reserved that filled nothing (execution refused a
   forged request) is a no-op: its message id is recorded, nothing else. One that did fill,
   or one whose order does not match its reservation, cannot be booked (LedgerError; the
   Ledger records it as unbooked and halts new BUYs instead of letting it loop).
6. Status: PARTIALLY_FILLED keeps the rest reserved (PARTIALLY_SETTLED); a terminal status
   (FILLED, CANCELED, REJECTED, EXPIRED) releases what is left (SETTLED if anything filled,
   else RELEASED); NEW and UNKNOWN keep the reservation as it is.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.idempotency import claim_message
from infra.db.ledger import accounting
from infra.db.ledger import balances as balance_ops
from infra.db.ledger.reservations import release_remaining, reservation_view
from infra.db.ledger.types import LedgerError, PositionView, ReservationStatus, SettlementOutcome
from infra.db.models import Fill, Position, Reservation
from infra.logging import get_logger
from protocol.enums import OrderStatus, Side
from protocol.messages import ExecutionReport
from protocol.types import split_symbol

__all__ = ["apply_report", "read_position", "read_positions", "record_unbooked"]

_log = get_logger(component="ledger")
_ZERO = Decimal(0)


def position_view(row: Position) -> PositionView:
    return PositionView(
        strategy_id=row.strategy_id,
        exchange=row.exchange,
        symbol=row.symbol,
        quantity=row.quantity,
        average_entry_price=row.average_entry_price,
        realised_pnl=row.realised_pnl,
        fees_paid=row.fees_paid,
        updated_at=row.updated_at,
    )


async def read_positions(session: AsyncSession, strategy_id: str | None) -> list[PositionView]:
    statement = select(Position).order_by(Position.strategy_id, Position.exchange, Position.symbol)
    if strategy_id is not None:
        statement = statement.where(Position.strategy_id == strategy_id)
    return [position_view(row) for row in await session.scalars(statement)]


async def read_position(session: AsyncSession, strategy_id: str, exchange: str, symbol: str) -> PositionView | None:
    row = await session.get(Position, (strategy_id, exchange, symbol), populate_existing=True)
    return position_view(row) if row is not None else None


async def _locked_position(session: AsyncSession, report: ExecutionReport) -> Position:
    key = {"strategy_id": report.strategy_id, "exchange": report.exchange, "symbol": report.symbol}
    await session.execute(
        insert(Position)
        .values(**key, quantity=_ZERO, average_entry_price=None, realised_pnl=_ZERO, fees_paid=_ZERO)
        .on_conflict_do_nothing(index_elements=[Position.strategy_id, Position.exchange, Position.symbol])
    )
    row = await session.scalar(
        select(Position).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def _filled_nothing(report: ExecutionReport) -> bool:
    return report.cumulative_filled_quantity == 0 and report.last_fill_quantity == 0


def _check_matches(row: Reservation, report: ExecutionReport) -> None:
    expected = (row.strategy_id, row.exchange, row.symbol, row.side)
    actual = (report.strategy_id, report.exchange, report.symbol, report.side.value)
    if expected != actual:
        if _filled_nothing(report):
            # Execution refused a request that claimed this order id with other terms: nothing
            # was placed, and nothing can be under this id any more, so its status still counts.
            _log.warning("report_does_not_match_reservation", client_order_id=report.client_order_id,
                         report=str(actual), reservation=str(expected), status=report.status.value)
            return
        raise LedgerError(
            f"report for {report.client_order_id} says (strategy, exchange, symbol, side) = {actual}, "
            f"the reservation {expected}"
        )


async def _debit(
    session: AsyncSession, row: Reservation, asset: str, amount: Decimal, shortfalls: list[tuple[str, Decimal]]
) -> None:
    """Take ``amount`` of ``asset``: from the reservation while it holds it, then from available;
    what neither covers is appended to ``shortfalls`` (the balance stops at zero)."""
    from_reserved = min(amount, row.remaining) if asset == row.asset else _ZERO
    excess = amount - from_reserved
    if excess > 0:
        if asset == row.asset:
            _log.warning(
                "settlement_beyond_reservation", client_order_id=row.client_order_id, asset=asset, excess=str(excess)
            )
        current = await balance_ops.read_one(session, asset)
        covered = min(excess, current.available) if current is not None else _ZERO
        if covered < excess:
            shortfalls.append((asset, excess - covered))
            _log.error("settlement_shortfall", client_order_id=row.client_order_id, asset=asset,
                       shortfall=str(excess - covered))
        excess = covered
    if from_reserved > 0 or excess > 0:
        await balance_ops.adjust(session, asset, reserved=-from_reserved, available=-excess)
    row.remaining -= from_reserved


def _quote_of_increase(row: Reservation, report: ExecutionReport, increase: Decimal) -> Decimal:
    if report.last_fill_quantity == increase and report.last_fill_price is not None:
        return increase * report.last_fill_price
    assert report.average_price is not None  # the model requires it once anything is filled
    quote = report.cumulative_filled_quantity * report.average_price - row.filled_quote
    if quote <= 0:
        raise LedgerError(
            f"report for {report.client_order_id}: average price {report.average_price} over "
            f"{report.cumulative_filled_quantity} does not exceed the {row.filled_quote} already settled"
        )
    return quote


async def apply_report(session: AsyncSession, consumer: str, report: ExecutionReport) -> SettlementOutcome:
    first = await claim_message(session, consumer, report.message_id)
    row = await session.scalar(
        select(Reservation)
        .where(Reservation.client_order_id == report.client_order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        if _filled_nothing(report):
            _log.warning("report_of_unreserved_order_booked_as_noop", client_order_id=report.client_order_id,
                         status=report.status.value, reason=report.reason, first=first)
            return SettlementOutcome(applied=first, reservation=None, position=None)
        raise LedgerError(f"execution report for unknown client_order_id {report.client_order_id}")
    if not first:
        return SettlementOutcome(
            applied=False,
            reservation=reservation_view(row),
            position=await read_position(session, report.strategy_id, report.exchange, report.symbol),
        )
    _check_matches(row, report)
    base, quote, _ = split_symbol(report.symbol)
    assets = {base, quote, row.asset} | ({report.fee_currency} if report.fee_currency else set())
    await balance_ops.lock(session, assets)

    increase = report.cumulative_filled_quantity - row.filled_quantity
    has_fill = report.last_fill_quantity > 0
    position = await _locked_position(session, report) if increase > 0 or has_fill else None
    state = (
        accounting.PositionState(
            position.quantity, position.average_entry_price, position.realised_pnl, position.fees_paid
        )
        if position is not None
        else accounting.FLAT
    )

    shortfalls: list[tuple[str, Decimal]] = []
    quote_value = _ZERO
    if increase > 0:
        quote_value = _quote_of_increase(row, report, increase)
        if report.side is Side.BUY:
            await _debit(session, row, quote, quote_value, shortfalls)
            await balance_ops.adjust(session, base, available=increase)
            state = accounting.buy(state, increase, quote_value)
        else:
            state = accounting.sell(state, increase, quote_value)  # refuses before touching balances
            await _debit(session, row, base, increase, shortfalls)
            await balance_ops.adjust(session, quote, available=quote_value)
        row.filled_quantity = report.cumulative_filled_quantity
        row.filled_quote += quote_value

    fee = _ZERO
    if has_fill and await _record_fill(session, report) and report.fee > 0:
        fee, currency = report.fee, report.fee_currency
        assert currency is not None and report.last_fill_price is not None  # the model guarantees both
        if currency == quote:
            state = accounting.pay_quote_fee(state, fee)
        elif currency == base:
            state = accounting.pay_base_fee(state, fee, report.last_fill_price)
        else:
            _log.info("fee_in_third_asset", client_order_id=report.client_order_id, asset=currency, fee=str(fee))
        await _debit(session, row, currency, fee, shortfalls)

    released = await _apply_status(session, row, report)
    if position is not None:
        position.quantity, position.average_entry_price = state.quantity, state.average_entry_price
        position.realised_pnl, position.fees_paid = state.realised_pnl, state.fees_paid
        position.updated_at = func.now()
    await session.flush()
    await session.refresh(row)
    if position is not None:
        await session.refresh(position)
    _log.info(
        "report_settled",
        client_order_id=report.client_order_id,
        status=report.status.value,
        filled=str(increase if increase > 0 else _ZERO),
        quote=str(quote_value),
        fee=str(fee),
        released=str(released),
    )
    return SettlementOutcome(
        applied=True,
        reservation=reservation_view(row),
        position=position_view(position) if position is not None else None,
        filled_quantity=increase if increase > 0 else _ZERO,
        filled_quote=quote_value,
        fee=fee,
        fee_currency=report.fee_currency if fee > 0 else None,
        released=released,
        position_changed=position is not None and (increase > 0 or fee > 0),
        shortfalls=tuple(shortfalls),
    )


async def record_unbooked(session: AsyncSession, consumer: str, report: ExecutionReport, error: str) -> SettlementOutcome:
    """Record a report that cannot be booked: only its message id, so it is not redelivered in a
    loop; the caller halts new BUYs. A redelivery of it is a plain duplicate (applied=False)."""
    first = await claim_message(session, consumer, report.message_id)
    if first:
        _log.error("report_not_booked", client_order_id=report.client_order_id, status=report.status.value,
                   filled=str(report.cumulative_filled_quantity), error=error)
    return SettlementOutcome(applied=first, reservation=None, position=None, unbooked=error)


async def _record_fill(session: AsyncSession, report: ExecutionReport) -> bool:
    """Insert the fill of this report; False if its trade was already recorded."""
    trade_id = report.trade_id or f"{report.client_order_id}:{report.cumulative_filled_quantity}"
    inserted = await session.scalar(
        insert(Fill)
        .values(
            client_order_id=report.client_order_id,
            trade_id=trade_id,
            exchange=report.exchange,
            symbol=report.symbol,
            side=report.side.value,
            quantity=report.last_fill_quantity,
            price=report.last_fill_price,
            fee=report.fee,
            fee_currency=report.fee_currency,
            strategy_id=report.strategy_id,
            filled_at=report.event_time,
            exit_reason=report.exit_reason.value if report.exit_reason is not None else None,
        )
        .on_conflict_do_nothing(index_elements=[Fill.exchange, Fill.symbol, Fill.trade_id])
        .returning(Fill.id)
    )
    return inserted is not None


async def _apply_status(session: AsyncSession, row: Reservation, report: ExecutionReport) -> Decimal:
    """Move the reservation along with the order status; the amount released to available."""
    status = ReservationStatus(row.status)
    if not status.is_open:
        # Already closed (terminal report seen, or released by the sweeper): a late report may
        # still settle fills above, but the reservation stays closed.
        if report.status.is_terminal:
            row.last_report_status = report.status.value
        return _ZERO
    row.last_report_status = report.status.value
    row.updated_at = func.now()
    if report.status.is_terminal:
        closing = ReservationStatus.SETTLED if row.filled_quantity > 0 else ReservationStatus.RELEASED
        return await release_remaining(session, row, closing)
    if row.filled_quantity > 0 and report.status is not OrderStatus.NEW:
        row.status = ReservationStatus.PARTIALLY_SETTLED.value
    return _ZERO

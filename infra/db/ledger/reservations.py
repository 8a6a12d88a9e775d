"""Approvals, rejections and reservations: hold balance for an order, give it back.

The reservation is ONE conditional update (``available >= amount``) in the same transaction as
the reservation row, the audit row and the processed message id. Under READ COMMITTED, a
concurrent update of the same balance row waits for the first to commit and then re-checks the
condition against the committed row, so any number of concurrent approvals can never reserve
more than is available.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.idempotency import claim_message
from infra.db.ledger import balances as balance_ops
from infra.db.ledger.account_lock import LockedBook
from infra.db.ledger.risk import insert_decision, read_decision
from infra.db.ledger.types import (
    AccountCheck,
    ApproveOutcome,
    ApproveStatus,
    DecisionKind,
    DecisionRecord,
    LedgerError,
    NewReservation,
    ReservationStatus,
    ReservationView,
)
from infra.db.models import Balance, Position, Reservation
from infra.logging import get_logger
from protocol.enums import RejectionReason, Side

__all__ = [
    "approve",
    "read_expired",
    "read_one",
    "read_open",
    "release",
    "release_remaining",
    "reservation_view",
    "reject",
]

_log = get_logger(component="ledger")
_ZERO = Decimal(0)
_OPEN = (ReservationStatus.HELD.value, ReservationStatus.PARTIALLY_SETTLED.value)


def reservation_view(row: Reservation | Row[Any]) -> ReservationView:
    """The view of an ORM row, or of a RETURNING row with the table's columns."""
    return ReservationView(
        id=row.id,
        client_order_id=row.client_order_id,
        signal_id=row.signal_id,
        strategy_id=row.strategy_id,
        exchange=row.exchange,
        symbol=row.symbol,
        side=Side(row.side),
        asset=row.asset,
        amount=row.amount,
        remaining=row.remaining,
        quantity=row.quantity,
        status=ReservationStatus(row.status),
        filled_quantity=row.filled_quantity,
        filled_quote=row.filled_quote,
        last_report_status=row.last_report_status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        updated_at=row.updated_at,
    )


async def _row(session: AsyncSession, client_order_id: str, *, for_update: bool = False) -> Reservation | None:
    statement = select(Reservation).where(Reservation.client_order_id == client_order_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement.execution_options(populate_existing=True))


async def read_one(session: AsyncSession, client_order_id: str) -> ReservationView | None:
    row = await _row(session, client_order_id)
    return reservation_view(row) if row is not None else None


async def read_open(session: AsyncSession, exchange: str | None = None, symbol: str | None = None) -> list[ReservationView]:
    statement = select(Reservation).where(Reservation.status.in_(_OPEN))
    if exchange is not None:
        statement = statement.where(Reservation.exchange == exchange)
    if symbol is not None:
        statement = statement.where(Reservation.symbol == symbol)
    rows = await session.scalars(statement.order_by(Reservation.created_at, Reservation.id))
    return [reservation_view(row) for row in rows]


async def read_expired(session: AsyncSession, now: datetime) -> list[ReservationView]:
    rows = await session.scalars(
        select(Reservation)
        .where(Reservation.status.in_(_OPEN), Reservation.expires_at <= now)
        .order_by(Reservation.expires_at, Reservation.id)
    )
    return [reservation_view(row) for row in rows]


async def _available(session: AsyncSession, asset: str) -> Decimal:
    balance = await balance_ops.read_one(session, asset)
    return balance.available if balance is not None else _ZERO


async def approve(
    session: AsyncSession,
    consumer: str,
    message_id: UUID,
    new: NewReservation,
    record: DecisionRecord,
    account_check: AccountCheck | None = None,
    book: LockedBook | None = None,
) -> ApproveOutcome:
    """See ``Ledger.approve``. ``book``: the transaction's, when it holds the account lock
    already (a batch takes it first, before any balance row lock); with an ``account_check``
    and no ``book`` the lock is taken here."""
    if not await claim_message(session, consumer, message_id):
        existing = await _row(session, new.client_order_id)
        return ApproveOutcome(
            status=ApproveStatus.DUPLICATE,
            reservation=reservation_view(existing) if existing is not None else None,
            decision=await read_decision(session, record.signal_id),
            available=await _available(session, new.asset),
        )
    if not new.amount > 0 or not new.quantity > 0:
        raise LedgerError(f"reservation amount and quantity must be > 0, got {new.amount} / {new.quantity}")
    ledger_inputs = {
        "client_order_id": new.client_order_id,
        "asset": new.asset,
        "amount": new.amount,
        "quantity": new.quantity,
        "expires_at": new.expires_at,
    }
    available_after = await session.scalar(
        update(Balance)
        .where(Balance.asset == new.asset, Balance.available >= new.amount)
        .values(
            available=Balance.available - new.amount,
            reserved=Balance.reserved + new.amount,
            updated_at=func.now(),
        )
        .returning(Balance.available)
        .execution_options(synchronize_session=False)
    )
    if available_after is None:
        available = await _available(session, new.asset)
        decision = await insert_decision(
            session,
            record,
            decision=DecisionKind.REJECTED,
            reason=RejectionReason.INSUFFICIENT_BALANCE,
            detail=f"{new.asset}: {new.amount} needed, {available} available",
            extra_inputs={**ledger_inputs, "available": available},
        )
        return ApproveOutcome(ApproveStatus.INSUFFICIENT_BALANCE, None, decision, available)
    if account_check is not None:
        book = book or await LockedBook.lock(session)
        if (refused := await _over_limit(session, new, record, ledger_inputs, account_check, book)) is not None:
            return refused
    # After the balance's lock, as settlement takes them (balances, then the position): no cycle.
    if Side(new.side) is Side.SELL and (refused := await _oversold(session, new, record, ledger_inputs)) is not None:
        return refused

    values: dict[str, object] = {
        "client_order_id": new.client_order_id,
        "signal_id": new.signal_id,
        "strategy_id": new.strategy_id,
        "exchange": new.exchange,
        "symbol": new.symbol,
        "side": Side(new.side).value,
        "asset": new.asset,
        "amount": new.amount,
        "remaining": new.amount,
        "quantity": new.quantity,
        "status": ReservationStatus.HELD.value,
        "expires_at": new.expires_at,
    }
    if new.created_at is not None:
        values["created_at"] = new.created_at
    # RETURNING the whole row: the view is built from it, with no read after the insert.
    inserted = (await session.execute(
        insert(Reservation)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Reservation.client_order_id])
        .returning(*Reservation.__table__.c)
    )).one_or_none()
    if inserted is None:
        # Same order id under a different message id: a bug upstream; never hold twice.
        raise LedgerError(f"client_order_id {new.client_order_id} already has a reservation")
    decision = await insert_decision(
        session,
        record,
        decision=DecisionKind.APPROVED,
        reason=None,
        detail=record.detail,
        extra_inputs={**ledger_inputs, "available": available_after + new.amount},
        client_order_id=new.client_order_id,
    )
    if book is not None:
        book.reserved(new)
    _log.info("reserved", client_order_id=new.client_order_id, asset=new.asset, amount=str(new.amount))
    return ApproveOutcome(ApproveStatus.RESERVED, reservation_view(inserted), decision, available_after)


async def _over_limit(
    session: AsyncSession, new: NewReservation, record: DecisionRecord, ledger_inputs: dict[str, object],
    account_check: AccountCheck, book: LockedBook,
) -> ApproveOutcome | None:
    """The caller's account-wide limits on the book as it stands (decision 0029): refused with
    the check's reason, audited with the figures it decided on, and the hold undone.

    Checked after the balance's update, so a BUY both limits refuse is refused
    INSUFFICIENT_BALANCE, as the rules' order has it (sizing before the limits)."""
    refusal = account_check(await book.read())
    if refusal is None:
        return None
    _log.info("refused under the account lock", client_order_id=new.client_order_id, reason=refusal.reason.value,
              detail=refusal.detail)
    return await _refuse(session, new, record, ApproveStatus.REFUSED, refusal.reason, refusal.detail,
                         {**ledger_inputs, "account_check": refusal.inputs})


async def _refuse(
    session: AsyncSession, new: NewReservation, record: DecisionRecord, status: ApproveStatus,
    reason: RejectionReason, detail: str, inputs: dict[str, object],
) -> ApproveOutcome:
    """Undo the hold the balance's update just made and audit the refusal, in the approval's transaction."""
    await balance_ops.adjust(session, new.asset, available=new.amount, reserved=-new.amount)
    decision = await insert_decision(session, record, decision=DecisionKind.REJECTED, reason=reason, detail=detail,
                                     extra_inputs=inputs)
    return ApproveOutcome(status, None, decision, await _available(session, new.asset))


async def _oversold(
    session: AsyncSession, new: NewReservation, record: DecisionRecord, ledger_inputs: dict[str, object]
) -> ApproveOutcome | None:
    """A SELL larger than the strategy's position less its open SELLs: refused (NO_POSITION).

    The risk rules check the same (``Holdings.sellable``) on what they read before deciding;
    this is the invariant, in the approval's transaction with the position row locked: two
    decisions in flight at once for one strategy and symbol (two risk-manager instances during
    a takeover, or one queue consumed by two) cannot both sell the same units. The base balance's
    own conditional update cannot see this: it is the account's, shared by every strategy."""
    key = (Position.strategy_id == new.strategy_id, Position.exchange == new.exchange, Position.symbol == new.symbol)
    selling = (
        select(func.coalesce(func.sum(Reservation.remaining), _ZERO))
        .where(Reservation.strategy_id == new.strategy_id, Reservation.exchange == new.exchange,
               Reservation.symbol == new.symbol, Reservation.side == Side.SELL.value, Reservation.status.in_(_OPEN))
        .scalar_subquery()
    )
    found = (await session.execute(
        select(Position.quantity, selling).where(*key).with_for_update(of=Position)
    )).one_or_none()
    held, sold = (found[0], found[1]) if found is not None else (_ZERO, _ZERO)
    if held - sold >= new.quantity:
        return None
    return await _refuse(
        session, new, record, ApproveStatus.INSUFFICIENT_BALANCE, RejectionReason.NO_POSITION,
        f"{new.symbol}: selling {new.quantity}, the position {held} less open sells {sold} allows {max(held - sold, _ZERO)}",
        {**ledger_inputs, "position": held, "open_sells": sold},
    )


async def reject(session: AsyncSession, consumer: str, message_id: UUID, record: DecisionRecord) -> bool:
    if record.decision is DecisionKind.APPROVED:
        raise LedgerError("an approval goes through approve(), which reserves its balance")
    if not await claim_message(session, consumer, message_id):
        return False
    await insert_decision(session, record, decision=record.decision, reason=record.reason, detail=record.detail)
    return True


async def release_remaining(session: AsyncSession, row: Reservation, status: ReservationStatus) -> Decimal:
    """Give a locked reservation's remaining back to available and close it; the amount released."""
    if status.is_open:
        raise LedgerError(f"release needs a closing status, not {status.value}")
    released = row.remaining
    if released > 0:
        await balance_ops.adjust(session, row.asset, available=released, reserved=-released)
    row.remaining, row.status, row.updated_at = _ZERO, status.value, func.now()
    await session.flush()
    await session.refresh(row)
    return released


async def release(session: AsyncSession, client_order_id: str, status: ReservationStatus) -> bool:
    row = await _row(session, client_order_id, for_update=True)
    if row is None:
        raise LedgerError(f"no reservation for client_order_id {client_order_id}")
    if not ReservationStatus(row.status).is_open:
        return False
    released = await release_remaining(session, row, status)
    _log.info("reservation_released", client_order_id=client_order_id, status=status.value, released=str(released))
    return True

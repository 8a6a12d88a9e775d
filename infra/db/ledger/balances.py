"""Balance rows: seeding, reading and the only two ways they change.

Every change is a single conditional statement, so a concurrent writer can never make a
balance negative between a check and a write: :func:`adjust` adds deltas ``WHERE`` the results
stay non-negative and reports a refusal as :class:`LedgerError` (the CHECK constraints are the
last line of defence, not the mechanism). The reservation itself (available -> reserved) is in
:mod:`infra.db.ledger.reservations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.ledger.types import BalanceView, LedgerError
from infra.db.models import Balance

__all__ = ["adjust", "lock", "read_all", "read_one", "seed"]

_ZERO = Decimal(0)


def _view(row: Balance | Row[tuple[str, Decimal, Decimal, Decimal]]) -> BalanceView:
    return BalanceView(asset=row.asset, total=row.total, available=row.available, reserved=row.reserved)


# Plain columns, not the entity: RETURNING an entity could hand back a stale identity-map object.
_COLUMNS = (Balance.asset, Balance.total, Balance.available, Balance.reserved)


async def seed(session: AsyncSession, balances: Mapping[str, Decimal]) -> bool:
    """Insert ``balances`` (all available) if the table is empty; True if it did."""
    for asset, amount in balances.items():
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
            raise LedgerError(f"initial balance of {asset} must be a finite Decimal >= 0, got {amount!r}")
    # Two agents starting together must not both see an empty table and both seed it.
    await session.execute(text("LOCK TABLE balances IN SHARE ROW EXCLUSIVE MODE"))
    if await session.scalar(select(Balance.asset).limit(1)) is not None:
        return False
    for asset, amount in balances.items():
        session.add(Balance(asset=asset, total=amount, available=amount, reserved=_ZERO))
    await session.flush()
    return True


async def read_all(session: AsyncSession) -> dict[str, BalanceView]:
    rows = (await session.scalars(select(Balance).order_by(Balance.asset))).all()
    return {row.asset: _view(row) for row in rows}


async def read_one(session: AsyncSession, asset: str) -> BalanceView | None:
    row = await session.get(Balance, asset, populate_existing=True)
    return _view(row) if row is not None else None


async def lock(session: AsyncSession, assets: Iterable[str]) -> None:
    """Row-lock the balances of ``assets`` in asset order.

    Settlement touches two or three assets (quote, base, fee); taking the locks in one global
    order means two settlements can never wait on each other in a cycle (deadlock).
    """
    wanted = sorted(set(assets))
    await session.execute(
        select(Balance.asset).where(Balance.asset.in_(wanted)).order_by(Balance.asset).with_for_update()
    )


async def adjust(
    session: AsyncSession, asset: str, *, available: Decimal = _ZERO, reserved: Decimal = _ZERO
) -> BalanceView:
    """Add ``available`` and ``reserved`` deltas to ``asset`` (total moves by their sum).

    A pure credit creates the row for an asset the account never held (e.g. the first BUY of a
    coin). A debit that would make either column negative, or hits a missing asset, raises
    LedgerError naming the shortfall.
    """
    if available >= 0 and reserved >= 0:
        statement = (
            insert(Balance)
            .values(asset=asset, total=available + reserved, available=available, reserved=reserved)
            .on_conflict_do_update(
                index_elements=[Balance.asset],
                set_={
                    "total": Balance.total + available + reserved,
                    "available": Balance.available + available,
                    "reserved": Balance.reserved + reserved,
                    "updated_at": func.now(),
                },
            )
            .returning(*_COLUMNS)
        )
        return _view((await session.execute(statement)).one())
    statement = (
        update(Balance)
        .where(
            Balance.asset == asset,
            Balance.available + available >= 0,
            Balance.reserved + reserved >= 0,
        )
        .values(
            total=Balance.total + available + reserved,
            available=Balance.available + available,
            reserved=Balance.reserved + reserved,
            updated_at=func.now(),
        )
        .returning(*_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        current = await read_one(session, asset)
        raise LedgerError(
            f"balance of {asset} cannot absorb available {available:+f} / reserved {reserved:+f}: "
            + (f"it has available {current.available}, reserved {current.reserved}" if current else "no such asset")
        )
    return _view(row)

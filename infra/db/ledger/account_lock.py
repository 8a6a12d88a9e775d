"""The account lock: BUY approvals whose limits span symbols are decided one at a time.

Balances never need it (the conditional update keeps reserved <= available under any
concurrency), but the account-wide limits do: the number of open positions and the total
exposure count every other symbol's positions and open BUYs, and a decision's snapshot is read
before its approval commits. Two BUYs on two symbols, in one process (settlement per symbol,
decision 0026) or in two (decision 0025), could each pass on a snapshot without the other and
together break the limit. Under this lock the approval re-reads the book (``read_book``), with
every earlier BUY's reservation committed or in its own transaction, and the caller's
``AccountCheck`` decides on it (decision 0029). A batch of approvals reads it once
(``LockedBook``).

``pg_advisory_xact_lock``: held to the end of the transaction, so the next BUY's read sees this
one's reservation; released by the commit or the rollback, so a crashed process never leaves it
held. Advisory locks belong to the database, so each test database (and each deployment) has
its own account lock. A transaction that takes it takes it before any balance row lock
(``infra.db.ledger.batching``): one lock order, no deadlock with another process's batch.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.ledger.types import AccountBook, HeldPosition, NewReservation, OpenBuy
from protocol.enums import Side

__all__ = ["ACCOUNT_LOCK_KEY", "LockedBook", "lock_account", "read_book"]

# Any fixed 64-bit key: "tradebus" in ASCII. The only other advisory locks are the duty leases
# (infra.db.lease: session-level, high word "trbu"), so the keys cannot meet.
ACCOUNT_LOCK_KEY = 0x7472616465627573

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# ONE statement, so positions and open BUYs come from one snapshot under READ COMMITTED: two
# reads could straddle a fill that moves a BUY from the reservations into a position, and
# miss it in both. Open BUYs summed per strategy and symbol, all the limits need: the rows
# read stay as few as the pairs, however many orders are in flight.
_BOOK = text(
    "SELECT 'P' AS kind, strategy_id, exchange, symbol, quantity AS amount, average_entry_price AS price "
    "FROM positions WHERE quantity <> 0 "
    "UNION ALL "
    "SELECT 'B', strategy_id, exchange, symbol, sum(remaining), NULL "
    "FROM reservations WHERE status IN ('HELD', 'PARTIALLY_SETTLED') AND side = 'BUY' "
    "GROUP BY strategy_id, exchange, symbol"
)


async def lock_account(session: AsyncSession) -> None:
    """Take the account lock for the session's transaction (waits for the holder's commit)."""
    await session.execute(_LOCK, {"key": ACCOUNT_LOCK_KEY})


async def read_book(session: AsyncSession) -> AccountBook:
    """Non-flat positions and open BUY reservations, as of one instant (see ``AccountBook``)."""
    positions: list[HeldPosition] = []
    buys: list[OpenBuy] = []
    for kind, strategy_id, exchange, symbol, amount, price in (await session.execute(_BOOK)).all():
        if kind == "P":
            positions.append(HeldPosition(strategy_id, exchange, symbol, amount, price))
        else:
            buys.append(OpenBuy(strategy_id, exchange, symbol, Side.BUY, amount))
    return AccountBook(tuple(positions), tuple(buys))


class LockedBook:
    """The book of one transaction that holds the account lock: read once, at its first check,
    then kept current with the transaction's own BUYs (a batch of approvals reads it once).

    Only this transaction can add an open BUY while it holds the lock. Others can still settle
    or release one: the book then still counts it at what it reserved, as the decision's own
    snapshot did, or a little more than is left (never fewer positions, never less exposure
    than the reservations hold).
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._book: AccountBook | None = None

    @classmethod
    async def lock(cls, session: AsyncSession) -> LockedBook:
        """Take the account lock (first in the transaction, before any balance row) and return its book."""
        await lock_account(session)
        return cls(session)

    async def read(self) -> AccountBook:
        if self._book is None:
            self._book = await read_book(self._session)
        return self._book

    def reserved(self, new: NewReservation) -> None:
        """Count a BUY this transaction has just reserved (a SELL adds no exposure)."""
        if self._book is None or Side(new.side) is not Side.BUY:
            return
        buy = OpenBuy(new.strategy_id, new.exchange, new.symbol, Side.BUY, new.amount)
        self._book = AccountBook(self._book.positions, (*self._book.open_buys, buy))

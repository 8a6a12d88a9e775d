"""Ledger reads the ledger's own facade does not offer: lists with filters and pages (orders,
fills, decisions), rejections by reason, and the realised-PnL curve.

Everything runs on the API's read-only engine (``default_transaction_read_only``): the API
cannot write the ledger even by mistake. Balances, positions, risk state and single decisions
come from :class:`infra.db.ledger.Ledger` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.ledger import accounting
from infra.db.ledger.risk import decision_view
from infra.db.ledger.types import DecisionView, LedgerError
from infra.db.models.ledger import Fill, RiskDecision
from infra.db.models.orders import Order, OrderEvent
from protocol import OrderStatus

__all__ = ["EquityRow", "LedgerReads", "OrderFilter", "TimeRange"]

R = TypeVar("R")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, statement: Select[Any], column: Any) -> Select[Any]:
        if self.since is not None:
            statement = statement.where(column >= self.since)
        if self.until is not None:
            statement = statement.where(column < self.until)
        return statement


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: str | None = None
    symbol: str | None = None
    strategy_id: str | None = None
    side: str | None = None
    open_only: bool = False  # any status that is not final (NEW, PARTIALLY_FILLED, UNKNOWN, ...)


@dataclass(frozen=True, slots=True)
class EquityRow:
    time: datetime
    net_realised: Decimal
    drawdown: Decimal


def _where_equal(statement: Select[Any], pairs: Sequence[tuple[Any, object | None]]) -> Select[Any]:
    for column, value in pairs:
        if value is not None:
            statement = statement.where(column == value)
    return statement


class LedgerReads:
    """Read-only queries over the ledger tables, each in its own short session."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _page(self, statement: Select[Any], order_by: Any, limit: int, offset: int) -> tuple[list[Any], int]:
        async with self._sessions() as session:
            total = int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)
            rows = list((await session.scalars(statement.order_by(order_by).limit(limit).offset(offset))).all())
        return rows, total

    async def orders(self, where: OrderFilter, window: TimeRange, limit: int, offset: int) -> tuple[list[Order], int]:
        statement = _where_equal(select(Order), [
            (Order.status, where.status), (Order.symbol, where.symbol),
            (Order.strategy_id, where.strategy_id), (Order.side, where.side),
        ])
        if where.open_only:
            statement = statement.where(Order.status.in_([s.value for s in OrderStatus if not s.is_terminal]))
        return await self._page(window.apply(statement, Order.created_at), Order.id.desc(), limit, offset)

    async def order(self, client_order_id: str) -> tuple[Order, list[OrderEvent]] | None:
        async with self._sessions() as session:
            row = await session.scalar(select(Order).where(Order.client_order_id == client_order_id))
            if row is None:
                return None
            events = (await session.scalars(
                select(OrderEvent).where(OrderEvent.order_id == row.id).order_by(OrderEvent.seq)
            )).all()
        return row, list(events)

    async def fills(
        self, *, symbol: str | None, strategy_id: str | None, client_order_id: str | None,
        window: TimeRange, limit: int, offset: int, oldest_first: bool = False,
    ) -> tuple[list[Fill], int]:
        statement = _where_equal(select(Fill), [
            (Fill.symbol, symbol), (Fill.strategy_id, strategy_id), (Fill.client_order_id, client_order_id),
        ])
        order = Fill.id.asc() if oldest_first else Fill.id.desc()
        return await self._page(window.apply(statement, Fill.filled_at), order, limit, offset)

    async def decisions(
        self, *, decision: str | None, reason: str | None, strategy_id: str | None, symbol: str | None,
        window: TimeRange, limit: int, offset: int, oldest_first: bool = False,
    ) -> tuple[list[DecisionView], int]:
        statement = _where_equal(select(RiskDecision), [
            (RiskDecision.decision, decision), (RiskDecision.reason, reason),
            (RiskDecision.strategy_id, strategy_id), (RiskDecision.symbol, symbol),
        ])
        order = RiskDecision.id.asc() if oldest_first else RiskDecision.id.desc()
        rows, total = await self._page(window.apply(statement, RiskDecision.decided_at), order, limit, offset)
        return [decision_view(row) for row in rows], total

    async def rejections_by_reason(self, window: TimeRange) -> list[tuple[str, int, datetime, str]]:
        """(reason, count, newest decided_at, that decision's detail), most frequent first."""
        ranked = window.apply(
            select(
                RiskDecision.reason, RiskDecision.decided_at, RiskDecision.detail,
                func.count().over(partition_by=RiskDecision.reason).label("n"),
                func.row_number().over(partition_by=RiskDecision.reason,
                                       order_by=(RiskDecision.decided_at.desc(), RiskDecision.id.desc())).label("rank"),
            ).where(RiskDecision.decision == "REJECTED", RiskDecision.reason.is_not(None)),
            RiskDecision.decided_at,
        ).subquery()
        statement = select(ranked.c.reason, ranked.c.n, ranked.c.decided_at, ranked.c.detail).where(ranked.c.rank == 1)
        async with self._sessions() as session:
            rows = (await session.execute(statement.order_by(ranked.c.n.desc(), ranked.c.reason))).all()
        return [(str(r[0]), int(r[1]), r[2], str(r[3])) for r in rows]

    async def all_fills(self, window: TimeRange) -> list[Fill]:
        statement = window.apply(select(Fill), Fill.filled_at).order_by(Fill.filled_at, Fill.id)
        async with self._sessions() as session:
            return list((await session.scalars(statement)).all())


def realised_curve(fills: Sequence[Fill]) -> list[EquityRow]:
    """Cumulative realised PnL net of fees after each fill, and its fall from the running peak.

    The fills are replayed through the ledger's own accounting (infra.db.ledger.accounting), so
    the curve ends where the positions table stands. A fill the accounting refuses (a SELL with
    no position inside the window) counts only its fee: the window started mid-position."""
    states: dict[tuple[str, str, str], accounting.PositionState] = {}
    total, peak = _ZERO, _ZERO
    points: list[EquityRow] = []
    for fill in fills:
        key = (fill.strategy_id, fill.exchange, fill.symbol)
        before = states.get(key, accounting.FLAT)
        state = before
        base, _, quote = fill.symbol.partition("/")
        try:
            if fill.side == "BUY":
                state = accounting.buy(state, fill.quantity, fill.quantity * fill.price)
            else:
                state = accounting.sell(state, fill.quantity, fill.quantity * fill.price)
            if fill.fee and fill.fee_currency == base:
                state = accounting.pay_base_fee(state, fill.fee, fill.price)
            elif fill.fee and fill.fee_currency == quote:  # a third-asset fee is not in fees_paid (ledger rule)
                state = accounting.pay_quote_fee(state, fill.fee)
        except LedgerError:
            fee = fill.fee * fill.price if fill.fee_currency == base else fill.fee if fill.fee_currency == quote else _ZERO
            state = accounting.pay_quote_fee(before, fee)
        states[key] = state
        total += (state.realised_pnl - state.fees_paid) - (before.realised_pnl - before.fees_paid)
        peak = max(peak, total)
        points.append(EquityRow(fill.filled_at, total, peak - total))
    return points

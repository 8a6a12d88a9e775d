"""Builders for ledger tests: a migrated database with a Ledger, reservations and reports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import create_engine, session_factory, upgrade_head
from infra.db.ledger import DecisionKind, DecisionRecord, Ledger, NewReservation
from protocol.enums import OrderStatus, OrderType, Side
from protocol.messages import ExecutionReport, client_order_id_for

D = Decimal
CONSUMER = "risk_manager.test"
STRATEGY = "rsi-btc-1m"
EXCHANGE = "paper"
SYMBOL = "BTC/USDT"


@asynccontextmanager
async def migrated_ledger(url: str, balances: dict[str, Decimal] | None = None, pool_size: int = 5) -> AsyncIterator[tuple[Ledger, AsyncEngine]]:
    """A Ledger on a freshly migrated database, seeded with ``balances``."""
    await upgrade_head(url)
    engine = create_engine(url, pool_size=pool_size, max_overflow=0)
    try:
        ledger = Ledger(session_factory(engine))
        if balances:
            assert await ledger.ensure_initial_balances(balances)
        yield ledger, engine
    finally:
        await engine.dispose()


def new_reservation(
    side: Side = Side.BUY,
    amount: Decimal = D("101"),
    quantity: Decimal = D("1"),
    *,
    signal_id: uuid.UUID | None = None,
    expires_in: timedelta = timedelta(minutes=5),
    symbol: str = SYMBOL,
) -> NewReservation:
    signal_id = signal_id or uuid.uuid4()
    base, quote = symbol.split("/")
    return NewReservation(
        client_order_id=client_order_id_for(signal_id),
        signal_id=signal_id,
        strategy_id=STRATEGY,
        exchange=EXCHANGE,
        symbol=symbol,
        side=side,
        asset=quote if side is Side.BUY else base,
        amount=amount,
        quantity=quantity,
        expires_at=datetime.now(UTC) + expires_in,
    )


def decision_for(reservation: NewReservation, **inputs: Any) -> DecisionRecord:
    return DecisionRecord(
        signal_id=reservation.signal_id,
        strategy_id=reservation.strategy_id,
        symbol=reservation.symbol,
        side=reservation.side.value,
        detail="approved in test",
        inputs={"reference_price": D("100"), **inputs},
        decision=DecisionKind.APPROVED,
    )


async def reserve(ledger: Ledger, reservation: NewReservation) -> None:
    outcome = await ledger.approve(CONSUMER, reservation.signal_id, reservation, decision_for(reservation))
    assert outcome.status == "RESERVED", outcome


def report(
    reservation: NewReservation,
    status: OrderStatus,
    cumulative: str = "0",
    last: str = "0",
    price: str | None = None,
    average: str | None = None,
    fee: str = "0",
    fee_currency: str | None = None,
    trade_id: str | None = None,
) -> ExecutionReport:
    """An execution report for ``reservation``'s order (fresh message id each call)."""
    return ExecutionReport(
        source="execution",
        client_order_id=reservation.client_order_id,
        strategy_id=reservation.strategy_id,
        exchange=reservation.exchange,
        symbol=reservation.symbol,
        side=reservation.side,
        order_type=OrderType.MARKET,
        status=status,
        quantity=reservation.quantity,
        cumulative_filled_quantity=D(cumulative),
        last_fill_quantity=D(last),
        last_fill_price=D(price) if price is not None else None,
        average_price=D(average) if average is not None else None,
        fee=D(fee),
        fee_currency=fee_currency,
        trade_id=trade_id,
        event_time=datetime.now(UTC),
    )


async def invariants_hold(engine: AsyncEngine) -> None:
    """Every open reservation is backed: per asset, sum(remaining of open) == balances.reserved."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT b.asset, b.reserved, b.available, b.total, "
                    "COALESCE((SELECT sum(r.remaining) FROM reservations r WHERE r.asset = b.asset "
                    "AND r.status IN ('HELD', 'PARTIALLY_SETTLED')), 0) AS held FROM balances b"
                )
            )
        ).all()
    for asset, reserved, available, total, held in rows:
        assert reserved == held, f"{asset}: balances.reserved {reserved} != open reservations {held}"
        assert available >= 0 and reserved >= 0 and available + reserved == total, asset


async def query(database_url: str, statement: str, **params: Any) -> list[Any]:
    """Rows of one SQL statement on its own short-lived engine (for assertions on end state)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(statement), params)).all())
    finally:
        await engine.dispose()

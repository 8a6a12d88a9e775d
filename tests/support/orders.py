"""Order requests for the execution and paper exchange tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from protocol import OrderRequest, client_order_id_for


def make_order(
    *,
    side: str = "BUY",
    quantity: str = "0.01",
    limit_price: str | None = None,
    reference_price: str = "47000",
    reference_time: datetime = datetime(2021, 9, 1, tzinfo=UTC),
    expires_in: timedelta = timedelta(minutes=10),
    symbol: str = "BTC/USDT",
    strategy_id: str = "test",
    exchange: str = "binance",
    **overrides: Any,
) -> OrderRequest:
    """A valid OrderRequest for a fresh signal (MARKET unless a limit price is given)."""
    signal_id = uuid.uuid4()
    base, quote = symbol.split("/")
    return OrderRequest(
        source="risk_manager",
        signal_id=signal_id,
        client_order_id=client_order_id_for(signal_id),
        strategy_id=strategy_id,
        exchange=exchange,
        symbol=symbol,
        side=side,
        order_type="LIMIT" if limit_price is not None else "MARKET",
        quantity=Decimal(quantity),
        limit_price=Decimal(limit_price) if limit_price is not None else None,
        reference_price=Decimal(reference_price),
        reference_time=reference_time,
        reserved_asset=quote if side == "BUY" else base,
        reserved_amount=Decimal("1000") if side == "BUY" else Decimal(quantity),
        expires_at=datetime.now(UTC) + expires_in,
        **overrides,
    )


async def hold(database_url: str, *orders: OrderRequest) -> None:
    """Reserve in the ledger exactly what each order says, as the risk manager does before it
    publishes one (execution places nothing without it). An order already held is skipped."""
    from agents.risk_manager.outgoing import reservation
    from infra.db import create_engine, session_factory
    from infra.db.ledger import DecisionKind, DecisionRecord, Ledger
    from infra.db.ledger import balances as balance_ops

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        ledger = Ledger(sessions)
        for order in orders:
            if await ledger.reservation(order.client_order_id) is not None:
                continue
            async with sessions.begin() as session:
                await balance_ops.adjust(session, order.reserved_asset, available=order.reserved_amount)
            record = DecisionRecord(
                signal_id=order.signal_id, strategy_id=order.strategy_id, symbol=order.symbol, side=order.side.value,
                detail="approved in test", inputs={}, decision=DecisionKind.APPROVED,
                output=order.model_dump(mode="json", by_alias=True),
            )
            outcome = await ledger.approve("risk_manager.test", order.signal_id, reservation(order), record)
            assert outcome.status == "RESERVED", outcome
    finally:
        await engine.dispose()

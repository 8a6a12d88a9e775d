"""Orders and their transitions (execution), and the paper exchange's own state.

The execution agent's tables (``orders``, ``order_events``, ``execution_halt``) are its record
of what it asked for and what the exchange answered. The ``paper_*`` tables are the simulated
exchange itself: a separate store, as a real exchange would be, so reconciliation after a
restart reads the paper store exactly as it would query Binance.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from infra.db.models.base import EXIT_REASON_CHECK, Base

__all__ = [
    "ExecutionHalt",
    "ORDER_STATUSES",
    "Order",
    "OrderEvent",
    "PaperBalance",
    "PaperFill",
    "PaperOrder",
]

# The protocol's OrderStatus values; the database refuses anything else.
ORDER_STATUSES = ("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED", "UNKNOWN")
_STATUS_CHECK = "status IN (" + ", ".join(f"'{s}'" for s in ORDER_STATUSES) + ")"
_SIDE_CHECK = "side IN ('BUY', 'SELL')"
_TYPE_CHECK = "order_type IN ('MARKET', 'LIMIT')"


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Order(Base):
    """One order execution was asked to place, with its latest known state.

    ``client_order_id`` is UNIQUE: it is claimed in the same transaction as the order message's
    processed id, so a redelivered message can never create a second order. ``request`` keeps the
    OrderRequest as received (JSON), so reports derive from it and an unsubmitted order can be
    submitted later with exactly the same content.
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_STATUS_CHECK, name="status_valid"),
        CheckConstraint(_SIDE_CHECK, name="side_valid"),
        CheckConstraint(_TYPE_CHECK, name="order_type_valid"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("filled >= 0 AND filled <= quantity", name="filled_within_quantity"),
        CheckConstraint("(order_type = 'LIMIT') = (limit_price IS NOT NULL)", name="limit_price_iff_limit"),
        CheckConstraint("(filled > 0) = (average_price IS NOT NULL)", name="average_iff_filled"),
        CheckConstraint("submit_attempts >= 0", name="submit_attempts_not_negative"),
        CheckConstraint(EXIT_REASON_CHECK, name="exit_reason_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(Text)
    request_message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)
    request: Mapped[str] = mapped_column(Text, nullable=False)
    strategy_id: Mapped[str] = mapped_column(Text, nullable=False)
    exchange: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str] = mapped_column(Text, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    order_type: Mapped[str] = mapped_column(Text, nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    limit_price: Mapped[Decimal | None] = mapped_column(Numeric)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    filled: Mapped[Decimal] = mapped_column(Numeric, nullable=False, server_default="0")
    average_price: Mapped[Decimal | None] = mapped_column(Numeric)
    # Fees paid so far per currency, {"USDT": "0.42", "BNB": "0.0001"} (text decimals): a BNB or
    # base-asset fee is never added to a quote fee.
    fees: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, server_default="{}")
    reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # How often the order was sent to the exchange (UNKNOWN outcomes are resubmitted only after a
    # query found nothing); 0 while it was never sent.
    submit_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # The protective exit the order is (migration 0006); NULL for any other order.
    exit_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class OrderEvent(Base):
    """One state transition of an order, exactly as published on execution.report.{symbol}.

    ``seq`` numbers the transitions of one order (1, 2, ...) and feeds the report's deterministic
    message id. ``published_at`` makes the table an outbox: a transition committed but not yet
    published (crash in between) is published on the next start.
    """

    __tablename__ = "order_events"
    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        CheckConstraint(_STATUS_CHECK, name="status_valid"),
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("cumulative_filled >= 0", name="cumulative_not_negative"),
        CheckConstraint("last_fill_quantity >= 0", name="last_fill_not_negative"),
        CheckConstraint("fee >= 0", name="fee_not_negative"),
        # The outbox scan ("what is not published yet") stays cheap however long the history grows.
        Index("ix_order_events_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    cumulative_filled: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    last_fill_quantity: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    last_fill_price: Mapped[Decimal | None] = mapped_column(Numeric)
    average_price: Mapped[Decimal | None] = mapped_column(Numeric)
    fee: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    fee_currency: Mapped[str | None] = mapped_column(Text)
    trade_id: Mapped[str | None] = mapped_column(Text)
    exchange_order_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExecutionHalt(Base):
    """The emergency stop as execution last applied it (one row); survives restarts."""

    __tablename__ = "execution_halt"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    # produced_at of the command applied: an older command redelivered later changes nothing.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)


# ------------------------------------------------------------------ the paper exchange


class PaperOrder(Base):
    """An order on the simulated exchange (rejected ones included, so a query can tell why)."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        CheckConstraint(_STATUS_CHECK, name="status_valid"),
        CheckConstraint(_SIDE_CHECK, name="side_valid"),
        CheckConstraint(_TYPE_CHECK, name="order_type_valid"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("filled >= 0 AND filled <= quantity", name="filled_within_quantity"),
        CheckConstraint("locked_amount >= 0", name="locked_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    exchange: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str] = mapped_column(Text, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    order_type: Mapped[str] = mapped_column(Text, nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    limit_price: Mapped[Decimal | None] = mapped_column(Numeric)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    filled: Mapped[Decimal] = mapped_column(Numeric, nullable=False, server_default="0")
    average_price: Mapped[Decimal | None] = mapped_column(Numeric)
    # What a resting order holds back (quote for a BUY incl. the maker fee, base for a SELL).
    locked_asset: Mapped[str | None] = mapped_column(Text)
    locked_amount: Mapped[Decimal] = mapped_column(Numeric, nullable=False, server_default="0")
    # The order's reference_time (market time of its decision): only later candles can fill it.
    rests_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PaperFill(Base):
    """One simulated trade."""

    __tablename__ = "paper_fills"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("fee >= 0", name="fee_not_negative"),
        CheckConstraint("liquidity IN ('TAKER', 'MAKER')", name="liquidity_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("paper_orders.id", ondelete="CASCADE"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    price: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    fee: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    fee_currency: Mapped[str] = mapped_column(Text, nullable=False)
    liquidity: Mapped[str] = mapped_column(Text, nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PaperBalance(Base):
    """The simulated account: free and locked amount per asset; neither can go negative."""

    __tablename__ = "paper_balances"
    __table_args__ = (
        CheckConstraint("free >= 0", name="free_not_negative"),
        CheckConstraint("locked >= 0", name="locked_not_negative"),
    )

    asset: Mapped[str] = mapped_column(Text, primary_key=True)
    free: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    locked: Mapped[Decimal] = mapped_column(Numeric, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = _now()

"""Ledger tables: balances, reservations, positions, fills, risk state and the decisions audit.

The invariants a trader relies on are CHECK and UNIQUE constraints here, so that no code path
(and no operator with psql) can store a balance that does not add up, a negative amount, a
second reservation for one order or a fill twice. Migration 0002 creates exactly these tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

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
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from infra.db.models.base import EXIT_REASON_CHECK, Base

__all__ = ["Balance", "Fill", "Position", "Reservation", "RiskDecision", "RiskState"]

RESERVATION_STATUSES = ("HELD", "PARTIALLY_SETTLED", "SETTLED", "RELEASED", "EXPIRED")
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
DECISIONS = ("APPROVED", "REJECTED", "IGNORED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _money(**kwargs: Any) -> Any:
    # Unbounded NUMERIC: exact decimal arithmetic in Postgres, no scale imposed on the values.
    return mapped_column(Numeric(asdecimal=True), nullable=False, **kwargs)


def _now_column(**kwargs: Any) -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(), **kwargs)


class Balance(Base):
    """One asset of the account: ``available + reserved = total``, none negative."""

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("asset <> ''", name="asset_not_empty"),
        CheckConstraint("available >= 0", name="available_non_negative"),
        CheckConstraint("reserved >= 0", name="reserved_non_negative"),
        CheckConstraint("available + reserved = total", name="total_is_available_plus_reserved"),
    )

    asset: Mapped[str] = mapped_column(Text, primary_key=True)
    total: Mapped[Decimal] = _money()
    available: Mapped[Decimal] = _money()
    reserved: Mapped[Decimal] = _money()
    updated_at: Mapped[datetime] = _now_column()


class Reservation(Base):
    """Balance held for one order (one row per client_order_id).

    ``amount`` is what was reserved, ``remaining`` what is still held; a closed reservation
    holds nothing. ``filled_quantity``/``filled_quote`` record what execution reports settled
    (by increase of the cumulative filled quantity), so a duplicated or re-ordered report
    cannot settle twice.
    """

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("client_order_id"),
        CheckConstraint(_in("status", RESERVATION_STATUSES), name="status_valid"),
        CheckConstraint("side IN ('BUY', 'SELL')", name="side_valid"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        CheckConstraint(
            "status IN ('HELD', 'PARTIALLY_SETTLED') OR remaining = 0", name="closed_holds_nothing"
        ),
        CheckConstraint("filled_quantity >= 0 AND filled_quote >= 0", name="filled_non_negative"),
        Index(None, "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(Text, nullable=False)
    signal_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)
    strategy_id: Mapped[str] = mapped_column(Text, nullable=False)
    exchange: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str] = mapped_column(Text, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    asset: Mapped[str] = mapped_column(Text, ForeignKey("balances.asset"), nullable=False)
    amount: Mapped[Decimal] = _money()
    remaining: Mapped[Decimal] = _money()
    quantity: Mapped[Decimal] = _money()
    status: Mapped[str] = mapped_column(Text, nullable=False)
    filled_quantity: Mapped[Decimal] = _money(server_default=text("0"))
    filled_quote: Mapped[Decimal] = _money(server_default=text("0"))
    last_report_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = _now_column()


class Position(Base):
    """A strategy's long-only spot position in one symbol; realised PnL excludes fees."""

    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        CheckConstraint(
            "(quantity = 0 AND average_entry_price IS NULL) OR (quantity > 0 AND average_entry_price > 0)",
            name="entry_price_iff_open",
        ),
        CheckConstraint("fees_paid >= 0", name="fees_paid_non_negative"),
    )

    strategy_id: Mapped[str] = mapped_column(Text, primary_key=True)
    exchange: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    quantity: Mapped[Decimal] = _money()
    average_entry_price: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True), nullable=True)
    realised_pnl: Mapped[Decimal] = _money()
    fees_paid: Mapped[Decimal] = _money()
    updated_at: Mapped[datetime] = _now_column()


class Fill(Base):
    """One exchange trade of one of our orders; a trade is recorded (and its fee charged) once."""

    __tablename__ = "fills"
    __table_args__ = (
        # Exchange trade ids are unique per symbol only (Binance counts them per market).
        UniqueConstraint("exchange", "symbol", "trade_id"),
        CheckConstraint("side IN ('BUY', 'SELL')", name="side_valid"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("fee >= 0", name="fee_non_negative"),
        CheckConstraint("fee = 0 OR fee_currency IS NOT NULL", name="fee_has_currency"),
        CheckConstraint(EXIT_REASON_CHECK, name="exit_reason_valid"),
        Index(None, "client_order_id"),
        Index(None, "strategy_id", "exchange", "symbol"),  # a position's fills (exit watch)
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(
        Text, ForeignKey("reservations.client_order_id"), nullable=False
    )
    trade_id: Mapped[str] = mapped_column(Text, nullable=False)
    exchange: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str] = mapped_column(Text, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    quantity: Mapped[Decimal] = _money()
    price: Mapped[Decimal] = _money()
    fee: Mapped[Decimal] = _money()
    fee_currency: Mapped[str | None] = mapped_column(Text, nullable=True)
    strategy_id: Mapped[str] = mapped_column(Text, nullable=False)
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_at: Mapped[datetime] = _now_column()
    # The protective exit the order was (migration 0006); NULL for any other order.
    exit_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class RiskState(Base):
    """The single row of persisted risk state: it is what survives a restart."""

    __tablename__ = "risk_state"
    __table_args__ = (
        CheckConstraint("id = 1", name="singleton"),
        CheckConstraint(_in("trading_state", TRADING_STATES), name="trading_state_valid"),
        CheckConstraint("NOT emergency_stop OR emergency_reason IS NOT NULL", name="stop_has_reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    trading_state: Mapped[str] = mapped_column(Text, nullable=False)
    trading_state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    emergency_stop: Mapped[bool] = mapped_column(Boolean, nullable=False)
    emergency_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_at: Mapped[datetime] = _now_column()
    peak_equity: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True), nullable=True)


class RiskDecision(Base):
    """The audit: every approval and rejection, with every input it used (JSONB)."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        CheckConstraint(_in("decision", DECISIONS), name="decision_valid"),
        CheckConstraint(
            "(decision = 'APPROVED') = (client_order_id IS NOT NULL)", name="order_iff_approved"
        ),
        CheckConstraint("decision <> 'REJECTED' OR reason IS NOT NULL", name="rejection_has_reason"),
        CheckConstraint(EXIT_REASON_CHECK, name="exit_reason_valid"),
        Index(None, "signal_id"),
        Index(None, "decided_at"),
        Index(None, "client_order_id"),  # an order's decision (exit watch)
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    signal_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)
    strategy_id: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str] = mapped_column(Text, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    decision: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    client_order_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime] = _now_column()
    # The protective exit this decision is about (migration 0006); NULL for a strategy's signal.
    exit_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SignalProgress(Base):
    """Per market, the latest candle whose strategy signals the risk manager has all decided (the
    strategy agent's SignalsDone marker; migration 0007, decision 0028)."""

    __tablename__ = "signal_progress"

    exchange: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    timeframe: Mapped[str] = mapped_column(Text, primary_key=True)
    candle_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = _now_column()

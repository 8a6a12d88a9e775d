"""Tables of the live path (sandbox and live trading): the deployment's identity and the
ledger-versus-exchange balance drift.

``deployment`` holds one random salt created by the migration: it is mixed into every client
order id sent to a real exchange, so a fresh database (another deployment) can never adopt
orders this one placed on the same account. ``balance_drift`` is the last comparison of the
ledger's balances with the exchange's, and whether an operator acknowledged a drift.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from infra.db.models.base import Base

__all__ = ["BalanceDrift", "Deployment"]


class Deployment(Base):
    """The single row naming this deployment (created with the schema, never changed)."""

    __tablename__ = "deployment"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    salt: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class BalanceDrift(Base):
    """The single row of the latest ledger-versus-exchange comparison.

    ``drifted`` with ``acknowledged_at`` NULL stops new BUYs (LEDGER_DRIFT) until an operator
    acknowledges it; ``differences`` maps asset -> {ledger, exchange} as text decimals.
    """

    __tablename__ = "balance_drift"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    drifted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    differences: Mapped[dict[str, dict[str, str]]] = mapped_column(JSONB, nullable=False, server_default="{}")
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)

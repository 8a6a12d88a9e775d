"""Operator controls: the record of every control an agent received, and the strategy pauses.

``controls`` is what the console shows ("who asked what, why, and what happened"): one row per
control message and applying agent (the emergency stop is applied by the risk manager and by
execution: two rows), written in the same transaction as the control's effect, so a redelivered
message finds its row and records nothing twice. The API only reads it.

``strategy_pauses`` is the risk manager's persisted pause per strategy instance (survives
restarts); a newer control is never overwritten by an older one delivered late.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Identity, Index, Text, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from infra.db.models.base import Base
from protocol.enums import ControlKind, ControlOutcome

__all__ = ["Control", "StrategyPause"]


def _in(column: str, values: type[ControlKind] | type[ControlOutcome]) -> str:
    return f"{column} IN ({', '.join(repr(member.value) for member in values)})"


class Control(Base):
    """One control message as received and applied (or refused) by one agent."""

    __tablename__ = "controls"
    __table_args__ = (
        UniqueConstraint("message_id", "agent"),
        CheckConstraint(_in("kind", ControlKind), name="kind_valid"),
        CheckConstraint(_in("outcome", ControlOutcome), name="outcome_valid"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)
    agent: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    requested_by: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    outcome: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    # The order a close produced (or the cancelled order), for the console's links.
    client_order_id: Mapped[str | None] = mapped_column(Text)


class StrategyPause(Base):
    """The pause state of one strategy instance (a row exists once it was paused or resumed)."""

    __tablename__ = "strategy_pauses"

    strategy_id: Mapped[str] = mapped_column(Text, primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    requested_by: Mapped[str] = mapped_column(Text, nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), nullable=False)

"""Tables that support message delivery guarantees."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from infra.db.models.base import Base


class ProcessedMessage(Base):
    """One row per (consumer, message id) whose effects have been committed.

    Written in the same transaction as the consumer's effects, so the row exists exactly when
    the effects do; a redelivered message finds it and is skipped.
    """

    __tablename__ = "processed_messages"
    __table_args__ = (CheckConstraint("consumer <> ''", name="consumer_not_empty"),)

    consumer: Mapped[str] = mapped_column(Text, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

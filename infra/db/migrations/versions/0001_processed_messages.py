"""processed_messages: ids of messages whose effects are committed, per consumer

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Hand-written to match infra.db.models.messaging.ProcessedMessage; constraint names follow
    # the naming convention in infra.db.models.base.
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_processed_messages")),
        sa.CheckConstraint("consumer <> ''", name=op.f("ck_processed_messages_consumer_not_empty")),
    )


def downgrade() -> None:
    op.drop_table("processed_messages")

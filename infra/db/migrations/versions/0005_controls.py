"""operator controls: every control as received and applied, and strategy pauses (issue #16)

Revision ID: 0005_controls
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_controls"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported): a migration must keep meaning what it meant when written.
_KINDS = ("ENGAGE_STOP", "RELEASE_STOP", "CANCEL_ORDER", "PAUSE_STRATEGY", "RESUME_STRATEGY", "CLOSE_POSITION")
_OUTCOMES = ("APPLIED", "REFUSED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _tz(name: str, now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now() if now else None)


def upgrade() -> None:
    op.create_table(
        "controls",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        _tz("requested_at"),
        _tz("received_at", now=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controls")),
        sa.UniqueConstraint("message_id", "agent", name=op.f("uq_controls_message_id_agent")),
        sa.CheckConstraint(_in("kind", _KINDS), name=op.f("ck_controls_kind_valid")),
        sa.CheckConstraint(_in("outcome", _OUTCOMES), name=op.f("ck_controls_outcome_valid")),
    )
    op.create_index(op.f("ix_controls_received_at"), "controls", ["received_at"])
    op.create_table(
        "strategy_pauses",
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        _tz("changed_at"),
        sa.Column("message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("strategy_id", name=op.f("pk_strategy_pauses")),
    )


def downgrade() -> None:
    op.drop_table("strategy_pauses")
    op.drop_table("controls")

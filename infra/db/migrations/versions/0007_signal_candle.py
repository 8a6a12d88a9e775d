"""signal progress: per market, the latest candle whose strategy signals the risk manager has all
decided (the strategy agent's SignalsDone), so the candle queue decides a candle's protective
exits after the signals of the candle before it (issue #18, decision 0028)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signal_progress",
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("timeframe", sa.Text(), nullable=False),
        # open time of the latest candle whose signals are all decided; only ever grows
        sa.Column("candle_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", name=op.f("pk_signal_progress")),
    )


def downgrade() -> None:
    op.drop_table("signal_progress")

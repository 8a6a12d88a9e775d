"""risk decisions name their signal's candle: timeframe and open time, so the risk manager's
candle queue can tell how far the strategies' signals of a symbol have been decided (issue #18,
decision 0028)

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
    op.add_column("risk_decisions", sa.Column("timeframe", sa.Text(), nullable=True))
    op.add_column("risk_decisions", sa.Column("candle_time", sa.DateTime(timezone=True), nullable=True))
    # Rows written before this migration audited the signal in full: its candle is in the inputs.
    op.execute(
        "UPDATE risk_decisions SET timeframe = inputs->'signal'->>'timeframe', "
        "candle_time = (inputs->'signal'->>'candle_time')::timestamptz "
        "WHERE inputs->'signal'->>'candle_time' IS NOT NULL"
    )
    # The candle queue asks, per candle of a watched position, for the latest decided candle.
    op.create_index(
        op.f("ix_risk_decisions_symbol_timeframe_candle_time"), "risk_decisions", ["symbol", "timeframe", "candle_time"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_risk_decisions_symbol_timeframe_candle_time"), "risk_decisions")
    op.drop_column("risk_decisions", "candle_time")
    op.drop_column("risk_decisions", "timeframe")

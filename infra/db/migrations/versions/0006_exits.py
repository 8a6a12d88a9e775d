"""protective exits: which exit (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP) an order,
its fills and its risk decision belong to (issue #18, decision 0023)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005_controls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported): a migration must keep meaning what it meant when written.
_REASONS = ("STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "TIME_STOP")
_TABLES = ("orders", "fills", "risk_decisions")


def upgrade() -> None:
    check = "exit_reason IS NULL OR exit_reason IN (" + ", ".join(repr(r) for r in _REASONS) + ")"
    for table in _TABLES:
        # NULL: not a protective exit (every row written before this migration too).
        op.add_column(table, sa.Column("exit_reason", sa.Text(), nullable=True))
        op.create_check_constraint(op.f(f"ck_{table}_exit_reason_valid"), table, check)
    # The exit watch looks up a position's opening BUY on every candle: its fills by strategy and
    # market, and that order's decision by client order id.
    op.create_index(op.f("ix_fills_strategy_id_exchange_symbol"), "fills", ["strategy_id", "exchange", "symbol"])
    op.create_index(op.f("ix_risk_decisions_client_order_id"), "risk_decisions", ["client_order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_risk_decisions_client_order_id"), "risk_decisions")
    op.drop_index(op.f("ix_fills_strategy_id_exchange_symbol"), "fills")
    for table in _TABLES:
        op.drop_constraint(op.f(f"ck_{table}_exit_reason_valid"), table, type_="check")
        op.drop_column(table, "exit_reason")

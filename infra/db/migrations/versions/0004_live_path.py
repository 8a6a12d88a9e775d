"""live path: fees per currency, fill key with the symbol, deployment salt, balance drift (issue #14)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz(name: str, nullable: bool = False, now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if now else None)


def upgrade() -> None:
    # orders.fees: one Decimal summed across currencies becomes {currency: amount}. Existing
    # rows are rebuilt from their transitions, which each carry one fee and its currency.
    # (Postgres allows no subquery in ALTER ... USING: a new column, filled, then renamed.)
    op.add_column("orders", sa.Column("fees_by_currency", postgresql.JSONB(), server_default="{}", nullable=False))
    op.execute(
        "UPDATE orders SET fees_by_currency = COALESCE((SELECT jsonb_object_agg(c, t::text) FROM "
        "(SELECT fee_currency AS c, sum(fee) AS t FROM order_events WHERE order_id = orders.id AND fee > 0 "
        "AND fee_currency IS NOT NULL GROUP BY fee_currency) per_currency), '{}'::jsonb)"
    )
    op.drop_constraint(op.f("ck_orders_fees_not_negative"), "orders", type_="check")
    op.drop_column("orders", "fees")
    op.alter_column("orders", "fees_by_currency", new_column_name="fees")
    op.drop_column("orders", "fee_currency")

    # Binance counts trade ids per market: the same id on two symbols is two trades.
    op.drop_constraint(op.f("uq_fills_exchange_trade_id"), "fills", type_="unique")
    op.create_unique_constraint(op.f("uq_fills_exchange_symbol_trade_id"), "fills", ["exchange", "symbol", "trade_id"])

    op.create_table(
        "deployment",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("salt", sa.Text(), nullable=False),
        _tz("created_at", now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
        sa.CheckConstraint("id = 1", name=op.f("ck_deployment_single_row")),
    )
    # 6 random hex characters, fixed for the life of this database.
    op.execute("INSERT INTO deployment (id, salt) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 6))")

    op.create_table(
        "balance_drift",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("differences", postgresql.JSONB(), server_default="{}", nullable=False),
        _tz("checked_at"),
        _tz("detected_at", nullable=True),
        _tz("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_drift")),
        sa.CheckConstraint("id = 1", name=op.f("ck_balance_drift_single_row")),
    )


def downgrade() -> None:
    op.drop_table("balance_drift")
    op.drop_table("deployment")
    op.drop_constraint(op.f("uq_fills_exchange_symbol_trade_id"), "fills", type_="unique")
    op.create_unique_constraint(op.f("uq_fills_exchange_trade_id"), "fills", ["exchange", "trade_id"])
    op.add_column("orders", sa.Column("fee_currency", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("fees_total", sa.Numeric(), server_default="0", nullable=False))
    op.execute("UPDATE orders SET fees_total = (SELECT COALESCE(sum(value::numeric), 0) FROM jsonb_each_text(fees))")
    op.drop_column("orders", "fees")
    op.alter_column("orders", "fees_total", new_column_name="fees")
    op.create_check_constraint(op.f("ck_orders_fees_not_negative"), "orders", "fees >= 0")

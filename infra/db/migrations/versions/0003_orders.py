"""orders: orders, order transitions, paper exchange state (issue #6)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Hand-written to match infra.db.models.orders; constraint names follow the naming convention in
# infra.db.models.base. Nothing here refers to the tables of 0002.
_STATUS_CHECK = "status IN ('NEW', 'PARTIALLY_FILLED', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'UNKNOWN')"
_SIDE_CHECK = "side IN ('BUY', 'SELL')"
_TYPE_CHECK = "order_type IN ('MARKET', 'LIMIT')"


def _tz(name: str, nullable: bool = False, now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if now else None)


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "orders",
        _id(),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange_order_id", sa.Text(), nullable=True),
        sa.Column("request_message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("limit_price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("filled", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("average_price", sa.Numeric(), nullable=True),
        sa.Column("fees", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("fee_currency", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _tz("expires_at"),
        sa.Column("submit_attempts", sa.Integer(), server_default="0", nullable=False),
        _tz("created_at", now=True),
        _tz("updated_at", now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
        sa.CheckConstraint(_STATUS_CHECK, name=op.f("ck_orders_status_valid")),
        sa.CheckConstraint(_SIDE_CHECK, name=op.f("ck_orders_side_valid")),
        sa.CheckConstraint(_TYPE_CHECK, name=op.f("ck_orders_order_type_valid")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity_positive")),
        sa.CheckConstraint("filled >= 0 AND filled <= quantity", name=op.f("ck_orders_filled_within_quantity")),
        sa.CheckConstraint("fees >= 0", name=op.f("ck_orders_fees_not_negative")),
        sa.CheckConstraint(
            "(order_type = 'LIMIT') = (limit_price IS NOT NULL)", name=op.f("ck_orders_limit_price_iff_limit")
        ),
        sa.CheckConstraint("(filled > 0) = (average_price IS NOT NULL)", name=op.f("ck_orders_average_iff_filled")),
        sa.CheckConstraint("submit_attempts >= 0", name=op.f("ck_orders_submit_attempts_not_negative")),
    )
    op.create_table(
        "order_events",
        _id(),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("cumulative_filled", sa.Numeric(), nullable=False),
        sa.Column("last_fill_quantity", sa.Numeric(), nullable=False),
        sa.Column("last_fill_price", sa.Numeric(), nullable=True),
        sa.Column("average_price", sa.Numeric(), nullable=True),
        sa.Column("fee", sa.Numeric(), nullable=False),
        sa.Column("fee_currency", sa.Text(), nullable=True),
        sa.Column("trade_id", sa.Text(), nullable=True),
        sa.Column("exchange_order_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _tz("event_time"),
        _tz("recorded_at", now=True),
        _tz("published_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_order_events_order_id_seq")),
        sa.UniqueConstraint("message_id", name=op.f("uq_order_events_message_id")),
        sa.CheckConstraint(_STATUS_CHECK, name=op.f("ck_order_events_status_valid")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_order_events_seq_positive")),
        sa.CheckConstraint("cumulative_filled >= 0", name=op.f("ck_order_events_cumulative_not_negative")),
        sa.CheckConstraint("last_fill_quantity >= 0", name=op.f("ck_order_events_last_fill_not_negative")),
        sa.CheckConstraint("fee >= 0", name=op.f("ck_order_events_fee_not_negative")),
    )
    # The outbox scan ("what is not published yet") stays cheap however long the history grows.
    op.create_index(
        "ix_order_events_unpublished", "order_events", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "execution_halt",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _tz("changed_at"),
        sa.Column("message_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_halt")),
        sa.CheckConstraint("id = 1", name=op.f("ck_execution_halt_single_row")),
    )
    op.create_table(
        "paper_orders",
        _id(),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("limit_price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("filled", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("average_price", sa.Numeric(), nullable=True),
        sa.Column("locked_asset", sa.Text(), nullable=True),
        sa.Column("locked_amount", sa.Numeric(), server_default="0", nullable=False),
        _tz("rests_after", nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _tz("created_at"),
        _tz("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_paper_orders_client_order_id")),
        sa.CheckConstraint(_STATUS_CHECK, name=op.f("ck_paper_orders_status_valid")),
        sa.CheckConstraint(_SIDE_CHECK, name=op.f("ck_paper_orders_side_valid")),
        sa.CheckConstraint(_TYPE_CHECK, name=op.f("ck_paper_orders_order_type_valid")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_paper_orders_quantity_positive")),
        sa.CheckConstraint("filled >= 0 AND filled <= quantity", name=op.f("ck_paper_orders_filled_within_quantity")),
        sa.CheckConstraint("locked_amount >= 0", name=op.f("ck_paper_orders_locked_not_negative")),
    )
    op.create_table(
        "paper_fills",
        _id(),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("fee", sa.Numeric(), nullable=False),
        sa.Column("fee_currency", sa.Text(), nullable=False),
        sa.Column("liquidity", sa.Text(), nullable=False),
        _tz("time"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_fills")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["paper_orders.id"], name=op.f("fk_paper_fills_order_id_paper_orders"), ondelete="CASCADE"
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_paper_fills_quantity_positive")),
        sa.CheckConstraint("price > 0", name=op.f("ck_paper_fills_price_positive")),
        sa.CheckConstraint("fee >= 0", name=op.f("ck_paper_fills_fee_not_negative")),
        sa.CheckConstraint("liquidity IN ('TAKER', 'MAKER')", name=op.f("ck_paper_fills_liquidity_valid")),
    )
    op.create_table(
        "paper_balances",
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("free", sa.Numeric(), nullable=False),
        sa.Column("locked", sa.Numeric(), server_default="0", nullable=False),
        _tz("updated_at", now=True),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_paper_balances")),
        sa.CheckConstraint("free >= 0", name=op.f("ck_paper_balances_free_not_negative")),
        sa.CheckConstraint("locked >= 0", name=op.f("ck_paper_balances_locked_not_negative")),
    )


def downgrade() -> None:
    for table in ("paper_balances", "paper_fills", "paper_orders", "execution_halt", "order_events", "orders"):
        op.drop_table(table)

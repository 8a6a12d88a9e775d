"""ledger: balances, reservations, positions, fills, risk state, risk decisions (issue #5)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Hand-written to match infra.db.models.ledger; constraint names follow the naming convention in
# infra.db.models.base (op.f() marks a name as already converted). The drift test compares the
# migrated schema with the models.


def _money(name: str, nullable: bool = False, **kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Numeric(asdecimal=True), nullable=nullable, **kwargs)  # type: ignore[arg-type]


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("asset", sa.Text(), nullable=False),
        _money("total"),
        _money("available"),
        _money("reserved"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_balances")),
        sa.CheckConstraint("asset <> ''", name=op.f("ck_balances_asset_not_empty")),
        sa.CheckConstraint("available >= 0", name=op.f("ck_balances_available_non_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_balances_reserved_non_negative")),
        sa.CheckConstraint(
            "available + reserved = total", name=op.f("ck_balances_total_is_available_plus_reserved")
        ),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("signal_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        _money("amount"),
        _money("remaining"),
        _money("quantity"),
        sa.Column("status", sa.Text(), nullable=False),
        _money("filled_quantity", server_default=sa.text("0")),
        _money("filled_quote", server_default=sa.text("0")),
        sa.Column("last_report_status", sa.Text(), nullable=True),
        _now("created_at"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_reservations_client_order_id")),
        sa.ForeignKeyConstraint(["asset"], ["balances.asset"], name=op.f("fk_reservations_asset_balances")),
        sa.CheckConstraint(
            "status IN ('HELD', 'PARTIALLY_SETTLED', 'SETTLED', 'RELEASED', 'EXPIRED')",
            name=op.f("ck_reservations_status_valid"),
        ),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name=op.f("ck_reservations_side_valid")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_reservations_amount_positive")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_reservations_quantity_positive")),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= amount", name=op.f("ck_reservations_remaining_within_amount")
        ),
        sa.CheckConstraint(
            "status IN ('HELD', 'PARTIALLY_SETTLED') OR remaining = 0",
            name=op.f("ck_reservations_closed_holds_nothing"),
        ),
        sa.CheckConstraint(
            "filled_quantity >= 0 AND filled_quote >= 0", name=op.f("ck_reservations_filled_non_negative")
        ),
    )
    op.create_index(op.f("ix_reservations_status_expires_at"), "reservations", ["status", "expires_at"])
    op.create_table(
        "positions",
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        _money("quantity"),
        _money("average_entry_price", nullable=True),
        _money("realised_pnl"),
        _money("fees_paid"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("strategy_id", "exchange", "symbol", name=op.f("pk_positions")),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_positions_quantity_non_negative")),
        sa.CheckConstraint(
            "(quantity = 0 AND average_entry_price IS NULL) OR (quantity > 0 AND average_entry_price > 0)",
            name=op.f("ck_positions_entry_price_iff_open"),
        ),
        sa.CheckConstraint("fees_paid >= 0", name=op.f("ck_positions_fees_paid_non_negative")),
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        _money("quantity"),
        _money("price"),
        _money("fee"),
        sa.Column("fee_currency", sa.Text(), nullable=True),
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=False),
        _now("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("exchange", "trade_id", name=op.f("uq_fills_exchange_trade_id")),
        sa.ForeignKeyConstraint(
            ["client_order_id"],
            ["reservations.client_order_id"],
            name=op.f("fk_fills_client_order_id_reservations"),
        ),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name=op.f("ck_fills_side_valid")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_fills_quantity_positive")),
        sa.CheckConstraint("price > 0", name=op.f("ck_fills_price_positive")),
        sa.CheckConstraint("fee >= 0", name=op.f("ck_fills_fee_non_negative")),
        sa.CheckConstraint("fee = 0 OR fee_currency IS NOT NULL", name=op.f("ck_fills_fee_has_currency")),
    )
    op.create_index(op.f("ix_fills_client_order_id"), "fills", ["client_order_id"])
    risk_state = op.create_table(
        "risk_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("trading_state", sa.Text(), nullable=False),
        sa.Column("trading_state_reason", sa.Text(), nullable=True),
        sa.Column("emergency_stop", sa.Boolean(), nullable=False),
        sa.Column("emergency_reason", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.Text(), nullable=True),
        _now("changed_at"),
        _money("peak_equity", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_state")),
        sa.CheckConstraint("id = 1", name=op.f("ck_risk_state_singleton")),
        sa.CheckConstraint(
            "trading_state IN ('ACTIVE', 'REDUCING', 'HALTED')", name=op.f("ck_risk_state_trading_state_valid")
        ),
        sa.CheckConstraint(
            "NOT emergency_stop OR emergency_reason IS NOT NULL", name=op.f("ck_risk_state_stop_has_reason")
        ),
    )
    # The one row exists from the start: a fresh system is ACTIVE with no emergency stop.
    op.bulk_insert(risk_state, [{"id": 1, "trading_state": "ACTIVE", "emergency_stop": False}])
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("signal_id", sa.Uuid(as_uuid=True), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("inputs", postgresql.JSONB(), nullable=False),
        sa.Column("output", postgresql.JSONB(), nullable=True),
        sa.Column("client_order_id", sa.Text(), nullable=True),
        _now("decided_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
        sa.CheckConstraint(
            "decision IN ('APPROVED', 'REJECTED', 'IGNORED')", name=op.f("ck_risk_decisions_decision_valid")
        ),
        sa.CheckConstraint(
            "(decision = 'APPROVED') = (client_order_id IS NOT NULL)",
            name=op.f("ck_risk_decisions_order_iff_approved"),
        ),
        sa.CheckConstraint(
            "decision <> 'REJECTED' OR reason IS NOT NULL", name=op.f("ck_risk_decisions_rejection_has_reason")
        ),
    )
    op.create_index(op.f("ix_risk_decisions_signal_id"), "risk_decisions", ["signal_id"])
    op.create_index(op.f("ix_risk_decisions_decided_at"), "risk_decisions", ["decided_at"])


def downgrade() -> None:
    # Reverse order of dependencies (fills -> reservations -> balances).
    op.drop_table("risk_decisions")
    op.drop_table("risk_state")
    op.drop_table("fills")
    op.drop_table("positions")
    op.drop_table("reservations")
    op.drop_table("balances")

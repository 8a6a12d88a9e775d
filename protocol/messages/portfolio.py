"""Ledger views published by the risk manager: positions and account risk."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from protocol.enums import TradingState, WarningLevel
from protocol.envelope import Message
from protocol.types import (
    AssetCode,
    ExchangeId,
    FiniteDecimal,
    Money,
    NonNegativeDecimal,
    Price,
    Ratio,
    RiskScore,
    StrategyId,
    Symbol,
)

__all__ = ["PositionUpdate", "RiskMetrics"]


class PositionUpdate(Message):
    """A strategy's position in one symbol after a fill or a mark-to-market (event)."""

    SCHEMA_NAME: ClassVar[str] = "portfolio.position"
    SCHEMA_VERSION: ClassVar[int] = 1

    strategy_id: StrategyId = Field(description="Strategy that owns the position.")
    exchange: ExchangeId = Field(description="Exchange the position is held on.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    quantity: FiniteDecimal = Field(description="Signed position size in base; 0 when flat.")
    average_entry_price: Price | None = Field(
        default=None,
        validate_default=True,
        description="Average entry price of the open quantity; required unless flat.",
    )
    realised_pnl: Money = Field(description="Realised PnL in quote currency (fees are in fees_paid).")
    fees_paid: NonNegativeDecimal = Field(description="Fees paid on this position so far.")
    mark_price: Price | None = Field(default=None, description="Latest price used to mark it.")
    unrealised_pnl: Money | None = Field(
        default=None,
        validate_default=True,
        description="PnL of the open quantity at mark_price; needs mark_price.",
    )

    @field_validator("average_entry_price")
    @classmethod
    def _entry_unless_flat(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        quantity = info.data.get("quantity")
        if quantity is not None and quantity != 0 and value is None:
            raise ValueError("average_entry_price is required when quantity is not 0")
        return value

    @field_validator("unrealised_pnl")
    @classmethod
    def _marked_to_something(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # Only meaningful when mark_price itself validated; an invalid mark is reported there.
        if value is not None and "mark_price" in info.data and info.data["mark_price"] is None:
            raise ValueError("unrealised_pnl needs mark_price")
        return value


class RiskMetrics(Message):
    """Account-wide risk snapshot from the risk manager's ledger (event)."""

    SCHEMA_NAME: ClassVar[str] = "risk.metrics"
    SCHEMA_VERSION: ClassVar[int] = 1

    quote_asset: AssetCode = Field(description="Currency all amounts below are in, e.g. USDT.")
    equity: Money = Field(description="Balances plus open positions at mark.")
    total_exposure: NonNegativeDecimal = Field(description="Sum of |position| x mark.")
    heat: NonNegativeDecimal = Field(description="total_exposure / equity (a ratio, may exceed 1).")
    reserved: NonNegativeDecimal = Field(description="Quote balance reserved for open orders.")
    available: NonNegativeDecimal = Field(description="Quote balance free to reserve.")
    drawdown: Ratio = Field(description="Fall of equity from its peak, 0 to 1.")
    risk_score: RiskScore = Field(description="Composite risk score, 0 (calm) to 100.")
    warning_level: WarningLevel = Field(description="SAFE, WARNING or CRITICAL.")
    trading_state: TradingState = Field(description="ACTIVE, REDUCING or HALTED.")
    open_positions: int = Field(ge=0, description="Number of non-flat positions.")

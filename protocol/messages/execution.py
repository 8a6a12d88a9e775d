"""Execution reports: what the exchange says happened to an order."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from protocol.enums import OrderStatus, OrderType, Side
from protocol.envelope import Message
from protocol.exits import ExitReason
from protocol.types import (
    AssetCode,
    ClientOrderId,
    ExchangeId,
    NonNegativeDecimal,
    Price,
    Quantity,
    StrategyId,
    Symbol,
    UtcDatetime,
)

__all__ = ["ExecutionReport"]

_ZERO = Decimal(0)
_NOTHING_FILLED = frozenset({OrderStatus.NEW, OrderStatus.REJECTED})


class ExecutionReport(Message):
    """An order's state after an exchange event (event), caused by the OrderRequest.

    Settle fills by the increase of cumulative_filled_quantity over what was already
    settled for the client_order_id: that is idempotent even if the same fill is reported
    twice (for example once by a websocket and once by polling).
    """

    SCHEMA_NAME: ClassVar[str] = "execution.report"
    SCHEMA_VERSION: ClassVar[int] = 1

    client_order_id: ClientOrderId = Field(description="Our id of the order.")
    exchange_order_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="The exchange's id, once known."
    )
    strategy_id: StrategyId = Field(description="Strategy the order belongs to.")
    exchange: ExchangeId = Field(description="Exchange the order is on.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    side: Side = Field(description="BUY or SELL.")
    order_type: OrderType = Field(description="MARKET or LIMIT.")
    status: OrderStatus = Field(description="Order status after this event.")
    quantity: Quantity = Field(description="Ordered quantity (base currency).")
    cumulative_filled_quantity: NonNegativeDecimal = Field(
        description="Total filled so far, <= quantity; equals quantity when FILLED."
    )
    last_fill_quantity: NonNegativeDecimal = Field(
        default=_ZERO, description="Quantity of the fill this report announces; 0 if none."
    )
    last_fill_price: Price | None = Field(
        default=None,
        validate_default=True,
        description="Price of that fill; required exactly when last_fill_quantity > 0.",
    )
    average_price: Price | None = Field(
        default=None,
        validate_default=True,
        description="Average price of all fills; required exactly when anything is filled.",
    )
    fee: NonNegativeDecimal = Field(default=_ZERO, description="Fee charged for the last fill.")
    fee_currency: AssetCode | None = Field(
        default=None, validate_default=True, description="Currency of fee; required if fee > 0."
    )
    trade_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="Exchange trade id of the last fill."
    )
    reason: str | None = Field(
        default=None, max_length=2000, description="Exchange message, e.g. why it was REJECTED."
    )
    event_time: UtcDatetime = Field(description="When the exchange says the event happened.")
    exit_reason: ExitReason | None = Field(
        default=None, description="The order's exit_reason: set when the order is a protective exit."
    )

    @field_validator("cumulative_filled_quantity")
    @classmethod
    def _cumulative_fits_status(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        quantity, status = info.data.get("quantity"), info.data.get("status")
        if quantity is None:
            return value
        if value > quantity:
            raise ValueError("must be <= quantity")
        if status is OrderStatus.FILLED and value != quantity:
            raise ValueError("must equal quantity when status is FILLED")
        if status is OrderStatus.PARTIALLY_FILLED and not _ZERO < value < quantity:
            raise ValueError("must be > 0 and < quantity when status is PARTIALLY_FILLED")
        if status in _NOTHING_FILLED and value != _ZERO:
            raise ValueError(f"must be 0 when status is {status.value}")  # type: ignore[union-attr]
        return value

    @field_validator("last_fill_quantity")
    @classmethod
    def _last_fill_within_cumulative(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        cumulative = info.data.get("cumulative_filled_quantity")
        if cumulative is not None and value > cumulative:
            raise ValueError("must be <= cumulative_filled_quantity")
        return value

    @field_validator("last_fill_price")
    @classmethod
    def _price_iff_fill(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return _present_iff(value, info.data.get("last_fill_quantity"), "last_fill_quantity > 0")

    @field_validator("average_price")
    @classmethod
    def _average_iff_filled(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        cumulative = info.data.get("cumulative_filled_quantity")
        return _present_iff(value, cumulative, "cumulative_filled_quantity > 0")

    @field_validator("fee")
    @classmethod
    def _fee_needs_fill(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        last_fill = info.data.get("last_fill_quantity")
        if last_fill is not None and value > _ZERO and last_fill == _ZERO:
            raise ValueError("must be 0 when last_fill_quantity is 0 (fee is per fill)")
        return value

    @field_validator("fee_currency")
    @classmethod
    def _currency_for_fee(cls, value: str | None, info: ValidationInfo) -> str | None:
        fee = info.data.get("fee")
        if value is None and fee is not None and fee > _ZERO:
            raise ValueError("fee_currency is required when fee > 0")
        return value


def _present_iff(value: Decimal | None, amount: Decimal | None, condition: str) -> Decimal | None:
    """Require ``value`` exactly when ``amount`` > 0 (skip if amount itself was invalid)."""
    if amount is None:
        return value
    if amount > _ZERO and value is None:
        raise ValueError(f"required when {condition}")
    if amount == _ZERO and value is not None:
        raise ValueError(f"must be null unless {condition}")
    return value

"""The risk manager's answers to a signal: an order command, or a rejection event."""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field, ValidationInfo, field_validator

from protocol.enums import OrderType, RejectionReason, Side, SignalSide, TimeInForce
from protocol.envelope import Message, MessageKind
from protocol.exits import ExitReason
from protocol.types import (
    AssetCode,
    ClientOrderId,
    ExchangeId,
    NonEmptyStr,
    Price,
    Quantity,
    StrategyId,
    Symbol,
    UtcDatetime,
    split_symbol,
)

__all__ = ["OrderRequest", "RiskRejection", "client_order_id_for"]

CLIENT_ORDER_ID_PREFIX = "tb-"
# A deployment salt: 6 lowercase hex characters (stored in the database at its first migration).
_DEPLOYMENT = re.compile(r"[0-9a-f]{6}")
_SALTED = re.compile(r"tb([0-9a-f]{6})-[a-z2-7]{26}")


def client_order_id_for(signal_id: UUID, deployment: str | None = None) -> str:
    """The exchange client order id for the order placed on ``signal_id``.

    Deterministic, so a redelivered signal maps to the same id and the exchange (and the
    UNIQUE constraint in Postgres) refuses a second order. ``deployment`` (sandbox and live)
    mixes the database's salt in: two deployments trading the same signal on one account get
    different ids, so a fresh database never adopts the orders of another. Without it (paper,
    replay) ``tb-`` + the signal id's hex, 35 chars; with it ``tb{salt}-`` + the signal id in
    base32, 35 chars. Both within the 36 most exchanges allow, and both name the signal.
    """
    if deployment is None:
        return CLIENT_ORDER_ID_PREFIX + signal_id.hex
    if not _DEPLOYMENT.fullmatch(deployment):
        raise ValueError(f"deployment salt must be 6 lowercase hex characters, got {deployment!r}")
    return f"tb{deployment}-" + base64.b32encode(signal_id.bytes).decode().rstrip("=").lower()


def _derived(value: str, signal_id: UUID) -> bool:
    salted = _SALTED.fullmatch(value)
    return value == client_order_id_for(signal_id, salted.group(1) if salted else None)


class OrderRequest(Message):
    """Command to execution: place this approved, sized order; its balance is reserved."""

    SCHEMA_NAME: ClassVar[str] = "trade.order"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    signal_id: UUID = Field(description="message_id of the Signal this order executes.")
    client_order_id: ClientOrderId = Field(
        description=(
            "Idempotency key at the exchange; equals client_order_id_for(signal_id) or, in sandbox "
            "and live, client_order_id_for(signal_id, deployment salt)."
        )
    )
    strategy_id: StrategyId = Field(description="Strategy whose signal this is.")
    exchange: ExchangeId = Field(description="Exchange to place the order on.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    side: Side = Field(description="BUY or SELL.")
    order_type: OrderType = Field(description="MARKET or LIMIT.")
    quantity: Quantity = Field(description="Order size in base currency, already lot-rounded.")
    limit_price: Price | None = Field(
        default=None,
        validate_default=True,
        description="Limit price; required for LIMIT, must be null for MARKET.",
    )
    reference_price: Price = Field(
        description="Price the risk decision was made at (for slippage checks and audit)."
    )
    reference_time: UtcDatetime = Field(
        description=(
            "Market time of reference_price: open_time of the stored candle it is the close of. "
            "A replay's market clock: the paper exchange prices a market order as of this instant, "
            "never from candles the decision could not have seen."
        )
    )
    time_in_force: TimeInForce = Field(default=TimeInForce.GTC, description="GTC, IOC or FOK.")
    reserved_asset: AssetCode = Field(
        description="Asset reserved for this order: the quote asset for BUY, the base for SELL."
    )
    reserved_amount: Quantity = Field(description="Amount of reserved_asset held for the order.")
    expires_at: UtcDatetime = Field(
        description="After this instant the order must not be placed; the reservation lapses."
    )
    exit_reason: ExitReason | None = Field(
        default=None, description="Set when the order is a protective exit: which exit fired."
    )
    exit_price: Price | None = Field(
        default=None,
        description=(
            "With exit_reason: the exit's trigger price (within its candle's range). The paper "
            "exchange fills a market exit at this price moved by slippage, not at the candle's "
            "close, as the backtester does; a real exchange fills at the market."
        ),
    )

    @field_validator("client_order_id")
    @classmethod
    def _derived_from_signal(cls, value: str, info: ValidationInfo) -> str:
        signal_id = info.data.get("signal_id")
        if signal_id is not None and not _derived(value, signal_id):
            raise ValueError(
                f"must be client_order_id_for(signal_id) = {client_order_id_for(signal_id)!r}"
            )
        return value

    @field_validator("limit_price")
    @classmethod
    def _limit_price_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        order_type = info.data.get("order_type")
        if order_type is OrderType.LIMIT and value is None:
            raise ValueError("limit_price is required for a LIMIT order")
        if order_type is OrderType.MARKET and value is not None:
            raise ValueError("limit_price must be null for a MARKET order")
        return value

    @field_validator("reserved_asset")
    @classmethod
    def _reserved_asset_matches_side(cls, value: str, info: ValidationInfo) -> str:
        symbol, side = info.data.get("symbol"), info.data.get("side")
        if symbol is None or side is None:
            return value
        base, quote, settle = split_symbol(symbol)
        # A buy spends quote, a sell delivers base; contracts margin in the settle asset.
        allowed = {quote if side is Side.BUY else base, settle} - {None}
        if value not in allowed:
            raise ValueError(
                f"a {side.value} of {symbol} reserves {' or '.join(sorted(allowed))}, not {value}"  # type: ignore[arg-type]
            )
        return value


class RiskRejection(Message):
    """The risk manager refused a signal (event); refusals are never silent."""

    SCHEMA_NAME: ClassVar[str] = "risk.rejection"
    SCHEMA_VERSION: ClassVar[int] = 1

    signal_id: UUID = Field(description="message_id of the refused Signal.")
    strategy_id: StrategyId = Field(description="Strategy that produced the signal.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    side: SignalSide = Field(description="Side of the refused signal.")
    reason: RejectionReason = Field(description="Machine-readable reason code.")
    detail: NonEmptyStr = Field(description="Human-readable detail, e.g. the limit and value.")
    exit_reason: ExitReason | None = Field(
        default=None, description="Set when the refused signal was a protective exit: which exit fired."
    )

"""The one interface the execution agent trades through: paper and ccxt implement it.

An adapter answers in `OrderState`s: the exchange's view of one order, cumulative, so the agent
can turn any answer (placement, query, cancel, a paper fill) into an execution report by
comparing it with what it stored before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from protocol import OrderRequest, OrderStatus

__all__ = [
    "AdapterError",
    "CredentialsRefused",
    "ExchangeAdapter",
    "Fill",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderState",
    "RateLimited",
]


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of an order, as the exchange reports it."""

    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderState:
    """Cumulative state of one order at the exchange."""

    client_order_id: str
    symbol: str
    status: OrderStatus
    quantity: Decimal
    filled: Decimal
    average_price: Decimal | None
    event_time: datetime
    exchange_order_id: str | None = None
    fills: Sequence[Fill] = field(default_factory=tuple)
    reason: str | None = None


class AdapterError(Exception):
    """Base of the errors an adapter raises; messages never contain credentials."""


class CredentialsRefused(AdapterError):
    """The exchange refused the API key, its secret or its permissions (message has no key)."""


class OrderRejected(AdapterError):
    """The exchange refused the order (insufficient funds, invalid order, below minimums)."""


class OrderOutcomeUnknown(AdapterError):
    """Timeout, network error or 5xx: the order may or may not exist. Query before retrying."""


class RateLimited(AdapterError):
    """The exchange asked us to slow down; back off and try again."""


@runtime_checkable
class ExchangeAdapter(Protocol):
    """What execution needs from an exchange. Every method is idempotent per client_order_id."""

    name: str
    # Seconds after a send during which "not found" does not prove the order was never placed
    # (the exchange may still act on a request it has not answered: its receive window).
    unknown_window: float

    async def place(self, order: OrderRequest) -> OrderState:
        """Submit the order with its client_order_id; raises OrderRejected / OrderOutcomeUnknown."""
        ...

    async def fetch(self, client_order_id: str, symbol: str) -> OrderState | None:
        """The order's current state, or None when the exchange has never seen it."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> OrderState:
        """Cancel if open; returns the resulting (possibly already terminal) state."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Orders the exchange still considers open."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per asset."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

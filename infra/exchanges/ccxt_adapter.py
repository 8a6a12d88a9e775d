"""The live (or sandbox/testnet) exchange adapter: ccxt.async_support behind ExchangeAdapter.

Never submit twice: every order carries the request's client_order_id as the exchange's client
order id, and ``place`` first asks the exchange whether that id already exists (a redelivered
order, or a retry after an UNKNOWN outcome, returns the existing order instead of a second one).
Binance keeps client order ids unique among OPEN orders only, so its duplicate check alone
would not stop a second order after the first one filled.

An order whose send ended without an answer (timeout, 5xx, Binance -1007 "send status
unknown") may still be placed by the exchange after a query said "not found": Binance acts on a
request until its ``recvWindow`` (sent with every signed request) has passed. So "not found" is
proof that an order was never placed only ``unknown_window`` seconds (recvWindow + margin) after
the send; the execution agent keeps looking the order up until then. A "duplicate order" answer
means the id is in use: the order exists, it is never a rejection.

Amounts come back from ccxt as strings (``exchange.number = str``) and become Decimals without
passing through float. API key and secret never appear in a log line or an exception message
(see ``ccxt_errors.scrub``); ccxt's own logger is pinned to INFO in ``infra.exchanges``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from infra.exchanges.adapter import (
    CredentialsRefused,
    Fill,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderState,
    RateLimited,
)
from infra.exchanges.ccxt_errors import is_duplicate_order, scrub, translate
from infra.exchanges.markets import make_exchange, point_urls_at
from infra.logging import get_logger
from protocol import OrderRequest, OrderStatus, OrderType

__all__ = ["CcxtAdapter"]

T = TypeVar("T")

_OPEN_STATUSES = {"open", "canceling"}
_TERMINAL = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _dec(value: Any) -> Decimal | None:
    # str() first: a float that slipped through must not carry its binary error into money.
    return None if value is None or value == "" else Decimal(str(value))


def _ms_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)


class CcxtAdapter:
    """ExchangeAdapter over a ccxt exchange (Binance spot is the tested one).

    ``api_base`` points every REST url at another server (a local fake in tests); ``sandbox``
    switches to the exchange's testnet urls. ``markets`` defaults to the saved snapshot; call
    ``refresh_markets()`` at start when online. ``timeout`` is seconds per HTTP request.
    ``read_retries`` bounds how often a read (query, open orders, balances, trades) is repeated
    after a rate-limit answer, waiting ``backoff`` seconds doubling (or the server's
    Retry-After); placing and cancelling never retry on their own."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        api_base: str | None = None,
        markets: Mapping[str, Mapping[str, Any]] | None = None,
        sandbox: bool = False,
        timeout: float = 10.0,
        recv_window: float = 5.0,
        unknown_margin: float = 5.0,
        read_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not api_key or not secret:
            raise ValueError(f"{exchange_id}: api key and secret are required for the ccxt adapter")
        self.name = exchange_id
        self._secrets = (api_key, secret)
        self._read_retries = read_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._log = get_logger(component="ccxt_adapter", exchange=exchange_id)
        exchange = make_exchange(exchange_id, markets=markets, api_key=api_key, secret=secret)
        if sandbox:
            exchange.set_sandbox_mode(True)
        if api_base is not None:
            point_urls_at(exchange, api_base)
        exchange.timeout = int(timeout * 1000)
        # Every signed request carries this recvWindow: the exchange refuses to act on it later.
        exchange.options["recvWindow"] = int(recv_window * 1000)
        self.unknown_window = recv_window + unknown_margin
        # Unified amounts as strings, so they reach Decimal exactly.
        exchange.number = str
        # Open orders of every symbol are one (heavier) request on purpose: reconciliation.
        exchange.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        self._exchange: ccxt_async.Exchange = exchange

    @property
    def markets(self) -> dict[str, dict[str, Any]]:
        """ccxt market definitions in use (for ``infra.exchanges.market_rules``)."""
        return dict(self._exchange.markets or {})

    async def refresh_markets(self) -> None:
        """Reload market definitions from the exchange (network)."""
        await self._read(lambda: self._exchange.load_markets(reload=True), "load_markets")

    # --- ExchangeAdapter -----------------------------------------------------------------
    async def place(self, order: OrderRequest) -> OrderState:
        """Submit ``order`` unless its client_order_id already exists at the exchange.

        Raises OrderRejected (the exchange refused, or the quantity/price is off the market's
        lot/tick grid), OrderOutcomeUnknown (no reliable answer: query before any retry) or
        RateLimited (nothing was submitted; back off)."""
        symbol, coid = order.symbol, order.client_order_id
        amount, price = self._to_precision(order)
        existing = await self.fetch(coid, symbol)
        if existing is not None:
            self._log.info("order_already_at_exchange", client_order_id=coid, symbol=symbol, status=existing.status.value)
            return existing
        params: dict[str, Any] = {"clientOrderId": coid}
        if order.order_type is OrderType.LIMIT:
            params["timeInForce"] = order.time_in_force.value
        try:
            answer = await self._exchange.create_order(
                symbol, order.order_type.value.lower(), order.side.value.lower(), amount, price, params
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is classified below
            if is_duplicate_order(error):
                # The id is in use: that order is ours (ids derive from the signal and the
                # deployment). Never a rejection: if the lookup cannot see it yet, it is UNKNOWN.
                found = await self.fetch(coid, symbol)
                if found is not None:
                    return found
                raise OrderOutcomeUnknown(f"order {coid}: exchange says duplicate order, lookup found none yet") from None
            mapped = translate(error, placing=True, secrets=self._secrets)
            self._log.warning("order_not_confirmed", client_order_id=coid, symbol=symbol, error=str(mapped))
            raise mapped from None
        try:
            state = await self._state(answer, coid, symbol)
        except Exception as error:  # noqa: BLE001
            # The exchange accepted the order; only reading it back failed. Never "rejected".
            message = f"order {coid} accepted, state unreadable: {scrub(str(error), self._secrets)}"
            raise OrderOutcomeUnknown(message) from None
        self._log.info("order_placed", client_order_id=coid, symbol=symbol, status=state.status.value)
        return state

    async def fetch(self, client_order_id: str, symbol: str) -> OrderState | None:
        """The order with this client order id, or None when the exchange does not know it."""
        params = {"clientOrderId": client_order_id}
        try:
            answer = await self._read(lambda: self._exchange.fetch_order(None, symbol, params), "fetch_order")
        except _NotFound:
            return None
        return await self._state(answer, client_order_id, symbol)

    async def cancel(self, client_order_id: str, symbol: str) -> OrderState:
        """Cancel the order if open; an order already finished is returned as it is.

        Raises OrderRejected when the exchange has no order with this client order id."""
        params = {"clientOrderId": client_order_id}
        try:
            answer = await self._exchange.cancel_order(None, symbol, params)
        except asyncio.CancelledError:
            raise
        except ccxt.OrderNotFound:
            # Binance says "Unknown order sent." both for unknown and for finished orders.
            state = await self.fetch(client_order_id, symbol)
            if state is None:
                raise OrderRejected(f"cancel refused: no order {client_order_id} on {symbol} at {self.name}") from None
            return state
        except Exception as error:  # noqa: BLE001
            raise translate(error, placing=False, secrets=self._secrets) from None
        state = await self._state(answer, client_order_id, symbol)
        self._log.info("order_canceled", client_order_id=client_order_id, symbol=symbol, status=state.status.value)
        return state

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Orders the exchange still considers open (all symbols when ``symbol`` is None)."""
        answers = await self._read(lambda: self._exchange.fetch_open_orders(symbol), "fetch_open_orders")
        states = []
        for answer in answers:
            coid = answer.get("clientOrderId")
            if not coid:  # pragma: no cover - binance always has one
                continue
            states.append(await self._state(answer, coid, answer["symbol"]))
        return states

    async def check_credentials(self) -> None:
        """One private request (the balances): raises CredentialsRefused when the exchange
        refuses the key, secret or permissions; other failures as usual."""
        try:
            await self._exchange.fetch_balance()
        except asyncio.CancelledError:
            raise
        except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as error:
            raise CredentialsRefused(translate(error, placing=False, secrets=self._secrets).args[0]) from None
        except Exception as error:  # noqa: BLE001
            raise translate(error, placing=False, secrets=self._secrets) from None

    async def balances(self) -> dict[str, Decimal]:
        """Total (free + locked) per asset; assets with a zero total are left out."""
        answer = await self._read(self._exchange.fetch_balance, "fetch_balance")
        totals: dict[str, Decimal] = {}
        for asset, total in (answer.get("total") or {}).items():
            value = _dec(total)
            if value:
                totals[asset] = value
        return totals

    async def close(self) -> None:
        await self._exchange.close()

    # --- internals -----------------------------------------------------------------------
    def _to_precision(self, order: OrderRequest) -> tuple[str, str | None]:
        # The exchange refuses quantities/prices off its grid (LOT_SIZE / PRICE_FILTER); say so
        # here instead of letting ccxt round them silently.
        try:
            amount = self._exchange.amount_to_precision(order.symbol, str(order.quantity))
            price = None
            if order.order_type is OrderType.LIMIT and order.limit_price is not None:
                price = self._exchange.price_to_precision(order.symbol, str(order.limit_price))
        except Exception as error:  # noqa: BLE001 - unknown market, below precision, ...
            raise translate(error, placing=True, secrets=self._secrets) from None
        if Decimal(amount) != order.quantity:
            raise OrderRejected(f"quantity {order.quantity} is not on the lot step of {order.symbol} (nearest {amount})")
        if price is not None and Decimal(price) != order.limit_price:
            raise OrderRejected(f"limit price {order.limit_price} is not on the tick of {order.symbol} (nearest {price})")
        return amount, price

    async def _read(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a read request, retrying rate-limit answers with backoff; map errors."""
        attempt = 0
        while True:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except ccxt.OrderNotFound:
                raise _NotFound() from None
            except Exception as error:  # noqa: BLE001
                mapped = translate(error, placing=False, secrets=self._secrets)
                if not isinstance(mapped, RateLimited) or attempt >= self._read_retries:
                    raise mapped from None
                delay = self._retry_delay(attempt)
                self._log.warning("rate_limited", request=what, retry_in=delay, attempt=attempt + 1)
                attempt += 1
                await asyncio.sleep(delay)

    def _retry_delay(self, attempt: int) -> float:
        delay = self._backoff * 2**attempt
        headers = getattr(self._exchange, "last_response_headers", None) or {}
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            if retry_after is not None:
                delay = max(delay, float(retry_after))
        except ValueError:
            pass
        return min(delay, self._max_backoff)

    async def _state(
        self, answer: Mapping[str, Any], client_order_id: str, symbol: str, *, refetch: bool = True
    ) -> OrderState:
        """OrderState from a ccxt order; fetches the order's trades when it has fills but the
        answer carries none (queries and cancels do not list fills)."""
        amount = _dec(answer.get("amount"))
        filled = _dec(answer.get("filled")) or Decimal(0)
        status = answer.get("status")
        if amount is None or status is None:
            if not refetch:
                raise ValueError(f"order {client_order_id}: the exchange reports no amount or status")
            # A bare acknowledgement: ask for the full order.
            full = await self._read(
                lambda: self._exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id}), "fetch_order"
            )
            return await self._state(full, client_order_id, symbol, refetch=False)
        trades: Sequence[Mapping[str, Any]] = answer.get("trades") or ()
        order_id = answer.get("id")
        if filled > 0 and not trades and order_id is not None:
            trades = await self._read(lambda: self._exchange.fetch_order_trades(order_id, symbol), "fetch_order_trades")
        event_time = (
            _ms_time(answer.get("lastUpdateTimestamp"))
            or _ms_time(answer.get("lastTradeTimestamp"))
            or _ms_time(answer.get("timestamp"))
            or self._clock()
        )
        fills = tuple(self._fill(trade, event_time) for trade in trades)
        return OrderState(
            client_order_id=client_order_id,
            symbol=symbol,
            status=_status(status, filled),
            quantity=amount,
            filled=filled,
            average_price=_average(answer, filled),
            event_time=event_time,
            exchange_order_id=None if order_id is None else str(order_id),
            fills=fills,
        )

    @staticmethod
    def _fill(trade: Mapping[str, Any], default_time: datetime) -> Fill:
        fee = trade.get("fee") or {}
        quantity, price = _dec(trade.get("amount")), _dec(trade.get("price"))
        if quantity is None or price is None:
            raise ValueError(f"trade {trade.get('id')} without amount or price")
        return Fill(
            trade_id=str(trade.get("id")),
            quantity=quantity,
            price=price,
            fee=_dec(fee.get("cost")) or Decimal(0),
            fee_currency=fee.get("currency"),
            time=_ms_time(trade.get("timestamp")) or default_time,
        )


class _NotFound(Exception):
    """The exchange has no such order (internal signal of ``_read``)."""


def _status(status: str, filled: Decimal) -> OrderStatus:
    if status in _OPEN_STATUSES:
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    try:
        return _TERMINAL[status]
    except KeyError:
        return OrderStatus.UNKNOWN


def _average(answer: Mapping[str, Any], filled: Decimal) -> Decimal | None:
    if filled <= 0:
        return None
    cost = _dec(answer.get("cost"))
    if cost is not None and cost > 0:
        # Quote spent / quantity filled, from the exchange's own cumulative figures.
        return cost / filled
    return _dec(answer.get("average"))

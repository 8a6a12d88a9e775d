"""The signed (account and order) half of the fake Binance spot REST API.

Requests are authenticated the way Binance does it: the ``X-MBX-APIKEY`` header must carry the
test key, ``signature`` must be the HMAC-SHA256 (hex) of the rest of the query string or form
body under the test secret, and ``timestamp`` must lie within ``recvWindow`` of the server
clock. Orders are checked against the saved exchangeInfo filters (PRICE_FILTER, LOT_SIZE,
NOTIONAL), then for a duplicate client order id among open orders, then for balance, with
Binance's codes and messages. MARKET orders fill at once at the price set with ``set_price``
(taker commission in the asset received); LIMIT orders rest (funds locked) until ``fill_resting``
or a cancel. There is no order book: a LIMIT order never matches on placement.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from infra.exchanges import snapshot_exchange_info

__all__ = ["TEST_API_KEY", "TEST_SECRET", "FakeAccount", "FakeOrder"]

TEST_API_KEY = "fakeKEY9d3b1c2e7f4a8b6c0d5e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0aKEY"
TEST_SECRET = "fakeSECRET0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3dSECRET"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Params = dict[str, str]

_OPEN = ("NEW", "PARTIALLY_FILLED")
_DEFAULT_RECV_WINDOW = 5000
_EIGHT = Decimal("0.00000001")
_MAX_RECV_WINDOW = 60000


def _fmt(value: Decimal) -> str:
    # Binance sends every amount with 8 decimals ("0.00100000").
    return f"{value:.8f}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=status)


@dataclass(frozen=True, slots=True)
class _Filters:
    base: str
    quote: str
    tick: Decimal
    min_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal


def _filters_by_symbol() -> dict[str, _Filters]:
    result = {}
    for entry in snapshot_exchange_info("binance")["symbols"]:
        filters = {f["filterType"]: f for f in entry["filters"]}
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {"minNotional": "0"}
        result[entry["symbol"]] = _Filters(
            base=entry["baseAsset"],
            quote=entry["quoteAsset"],
            tick=Decimal(filters["PRICE_FILTER"]["tickSize"]),
            min_price=Decimal(filters["PRICE_FILTER"]["minPrice"]),
            step=Decimal(filters["LOT_SIZE"]["stepSize"]),
            min_qty=Decimal(filters["LOT_SIZE"]["minQty"]),
            max_qty=Decimal(filters["LOT_SIZE"]["maxQty"]),
            min_notional=Decimal(notional["minNotional"]),
        )
    return result


@dataclass(slots=True)
class FakeTrade:
    """One execution of a fake order."""

    trade_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool


@dataclass(slots=True)
class FakeOrder:
    """An order as the fake exchange stores it."""

    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal  # 0 for MARKET, like Binance
    time_in_force: str | None
    status: str
    time: int
    update_time: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    trades: list[FakeTrade] = field(default_factory=list)

    def as_query(self) -> dict[str, Any]:
        """The GET /api/v3/order (and openOrders) representation."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.quantity),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(Decimal(0)),
            "icebergQty": _fmt(Decimal(0)),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": _fmt(Decimal(0)),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


class FakeAccount:
    """Balances, orders and trades of one fake Binance account, plus its signed routes."""

    def __init__(
        self,
        *,
        api_key: str = TEST_API_KEY,
        secret: str = TEST_SECRET,
        balances: Mapping[str, str | Decimal] | None = None,
        taker_fee: Decimal = Decimal("0.001"),
        maker_fee: Decimal = Decimal("0.001"),
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.free: dict[str, Decimal] = {asset: Decimal(str(v)) for asset, v in (balances or {}).items()}
        self.locked: dict[str, Decimal] = {asset: Decimal(0) for asset in self.free}
        self.prices: dict[str, Decimal] = {}
        # When set, MARKET orders fill at price_of(symbol) (the live market) instead of ``prices``.
        self.price_of: Callable[[str], Decimal | None] | None = None
        self.orders: list[FakeOrder] = []
        self.filters = _filters_by_symbol()
        self.signed_requests = 0  # requests that passed key, signature and timestamp checks
        # "Send status unknown": the next POSTs are answered -1007 at once and placed later.
        self._deferrals: list[float] = []
        self.deferred: list[asyncio.Task[None]] = []
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(50000)

    # --- test controls -------------------------------------------------------------------
    def set_price(self, symbol: str, price: str | Decimal) -> None:
        """The price MARKET orders on ``symbol`` ("BTCUSDT") fill at."""
        self.prices[symbol] = Decimal(str(price))

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        """(free, locked) of ``asset``."""
        return self.free.get(asset, Decimal(0)), self.locked.get(asset, Decimal(0))

    def defer_next(self, count: int, seconds: float) -> None:
        """Answer the next ``count`` new orders with Binance -1007 (timeout waiting for the
        backend; send status unknown) and place each ``seconds`` later, as Binance's matching
        engine may: only while the request's recvWindow has not passed."""
        self._deferrals.extend([seconds] * count)

    def orders_with(self, client_order_id: str) -> list[FakeOrder]:
        return [order for order in self.orders if order.client_order_id == client_order_id]

    def fill_resting(self, client_order_id: str, qty: Decimal | None = None) -> FakeOrder:
        """Fill (all or ``qty`` of) a resting LIMIT order at its limit price, as maker."""
        order = self._latest(client_order_id)
        if order is None or order.status not in _OPEN:
            raise KeyError(f"no open order {client_order_id}")
        remaining = order.quantity - order.executed
        amount = remaining if qty is None else min(qty, remaining)
        self._release(order, amount)
        self._execute(order, amount, order.price, maker=True)
        return order

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/api/v3/order"): self._signed(self._new_or_deferred_order),
            ("GET", "/api/v3/order"): self._signed(self._query_order),
            ("DELETE", "/api/v3/order"): self._signed(self._cancel_order),
            ("GET", "/api/v3/openOrders"): self._signed(self._open_orders),
            ("GET", "/api/v3/account"): self._signed(self._account),
            ("GET", "/api/v3/myTrades"): self._signed(self._my_trades),
        }

    # --- authentication ------------------------------------------------------------------
    def _signed(self, route: Callable[[Params], web.Response]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            body = await request.text() if request.can_read_body else ""
            # Binance signs queryString + requestBody, concatenated as sent.
            total = request.query_string + body
            pairs = parse_qsl(total, keep_blank_values=True)
            params = {key: value for key, value in pairs if key != "signature"}
            signatures = [value for key, value in pairs if key == "signature"]
            signed_part = "&".join(part for part in total.split("&") if not part.startswith("signature="))
            expected = hmac.new(self.secret.encode(), signed_part.encode(), hashlib.sha256).hexdigest()
            if len(signatures) != 1 or not hmac.compare_digest(signatures[0], expected):
                return _error(400, -1022, "Signature for this request is not valid.")
            problem = self._check_timestamp(params)
            if problem is not None:
                return problem
            self.signed_requests += 1
            return route(params)

        return handler

    @staticmethod
    def _check_timestamp(params: Params) -> web.Response | None:
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", _DEFAULT_RECV_WINDOW))
        except (KeyError, ValueError):
            return _error(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if window > _MAX_RECV_WINDOW:
            return _error(400, -1131, "recvWindow must be less than 60000")
        now = _now_ms()
        if timestamp >= now + 1000 or now - timestamp > window:
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    # --- orders --------------------------------------------------------------------------
    def _latest(self, client_order_id: str | None, order_id: str | None = None) -> FakeOrder | None:
        for order in reversed(self.orders):
            if client_order_id is not None and order.client_order_id == client_order_id:
                return order
            if order_id is not None and str(order.order_id) == order_id:
                return order
        return None

    def _new_or_deferred_order(self, params: Params) -> web.Response:
        if not self._deferrals:
            return self._new_order(params)
        delay = self._deferrals.pop(0)
        self.deferred.append(asyncio.get_running_loop().create_task(self._place_later(params, delay)))
        return _error(503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.")

    async def _place_later(self, params: Params, delay: float) -> None:
        await asyncio.sleep(delay)
        window = int(params.get("recvWindow", _DEFAULT_RECV_WINDOW))
        if _now_ms() - int(params["timestamp"]) <= window:
            self._new_order(params)

    def _market_price(self, symbol: str) -> Decimal | None:
        return self.price_of(symbol) if self.price_of is not None else self.prices.get(symbol)

    def totals(self) -> dict[str, Decimal]:
        """free + locked per asset, zero totals left out (what the ledger must equal)."""
        assets = set(self.free) | set(self.locked)
        totals = {a: self.free.get(a, Decimal(0)) + self.locked.get(a, Decimal(0)) for a in assets}
        return {a: t for a, t in totals.items() if t != 0}

    def _new_order(self, params: Params) -> web.Response:
        symbol = params.get("symbol", "")
        rules = self.filters.get(symbol)
        if rules is None:
            return _error(400, -1121, "Invalid symbol.")
        side, kind = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT"):
            return _error(400, -1116, "Invalid orderType.")
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params["price"]) if kind == "LIMIT" else self._market_price(symbol)
        except (KeyError, ArithmeticError):
            return _error(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        if price is None:
            return _error(400, -2010, "fake binance: no market price set for this symbol.")
        if kind == "LIMIT" and (price < rules.min_price or price % rules.tick != 0):
            return _error(400, -1013, "Filter failure: PRICE_FILTER")
        if qty < rules.min_qty or qty > rules.max_qty or qty % rules.step != 0:
            return _error(400, -1013, "Filter failure: LOT_SIZE")
        if qty * price < rules.min_notional:
            return _error(400, -1013, "Filter failure: NOTIONAL")
        client_id = params.get("newClientOrderId") or f"fake-{next(self._order_ids)}"
        # Binance: a client order id is unique among OPEN orders only; a filled one can be reused.
        if any(o.client_order_id == client_id and o.status in _OPEN for o in self.orders):
            return _error(400, -2010, "Duplicate order sent.")
        pay_asset, pay_amount = (rules.quote, qty * price) if side == "BUY" else (rules.base, qty)
        if self.free.get(pay_asset, Decimal(0)) < pay_amount:
            return _error(400, -2010, "Account has insufficient balance for requested action.")
        now = _now_ms()
        order = FakeOrder(
            order_id=next(self._order_ids),
            symbol=symbol,
            client_order_id=client_id,
            side=side,
            type=kind,
            quantity=qty,
            price=price if kind == "LIMIT" else Decimal(0),
            time_in_force=params.get("timeInForce") if kind == "LIMIT" else "GTC",
            status="NEW",
            time=now,
            update_time=now,
        )
        self.orders.append(order)
        if kind == "MARKET":
            self._execute(order, qty, price, maker=False)
        else:
            self._move(pay_asset, pay_amount, lock=True)
        return web.json_response(self._placement(order, params.get("newOrderRespType", "FULL")))

    def _placement(self, order: FakeOrder, resp_type: str) -> dict[str, Any]:
        ack = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.update_time,
        }
        if resp_type == "ACK":
            return ack
        result = order.as_query()
        for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "origQuoteOrderQty"):
            result.pop(key)
        result["transactTime"] = order.update_time
        if resp_type == "FULL":
            result["fills"] = [
                {
                    "price": _fmt(t.price),
                    "qty": _fmt(t.qty),
                    "commission": _fmt(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.trade_id,
                }
                for t in order.trades
            ]
        return result

    def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        rules = self.filters[order.symbol]
        cost = qty * price
        rate = self.maker_fee if maker else self.taker_fee
        # Commission is charged in the asset received, in the 8 decimals Binance reports it with
        # (the account pays exactly what the trade says).
        if order.side == "BUY":
            fee, fee_asset = (qty * rate).quantize(_EIGHT), rules.base
            self._add(rules.quote, -cost)
            self._add(rules.base, qty - fee)
        else:
            fee, fee_asset = (cost * rate).quantize(_EIGHT), rules.quote
            self._add(rules.base, -qty)
            self._add(rules.quote, cost - fee)
        now = _now_ms()
        order.trades.append(FakeTrade(next(self._trade_ids), price, qty, fee, fee_asset, now, maker))
        order.executed += qty
        order.quote += cost
        order.status = "FILLED" if order.executed == order.quantity else "PARTIALLY_FILLED"
        order.update_time = now

    def _add(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, Decimal(0)) + amount
        self.locked.setdefault(asset, Decimal(0))

    def _move(self, asset: str, amount: Decimal, *, lock: bool) -> None:
        sign = 1 if lock else -1
        self._add(asset, -sign * amount)
        self.locked[asset] += sign * amount

    def _release(self, order: FakeOrder, qty: Decimal) -> None:
        # Give back the funds a resting order locked for ``qty`` of it.
        rules = self.filters[order.symbol]
        if order.side == "BUY":
            self._move(rules.quote, qty * order.price, lock=False)
        else:
            self._move(rules.base, qty, lock=False)

    def _query_order(self, params: Params) -> web.Response:
        order = self._latest(params.get("origClientOrderId"), params.get("orderId"))
        if order is None or order.symbol != params.get("symbol"):
            return _error(400, -2013, "Order does not exist.")
        return web.json_response(order.as_query())

    def _cancel_order(self, params: Params) -> web.Response:
        order = self._latest(params.get("origClientOrderId"), params.get("orderId"))
        if order is None or order.symbol != params.get("symbol") or order.status not in _OPEN:
            return _error(400, -2011, "Unknown order sent.")
        if order.type == "LIMIT":
            self._release(order, order.quantity - order.executed)
        order.status = "CANCELED"
        order.update_time = _now_ms()
        answer = order.as_query()
        for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty"):
            answer.pop(key)
        answer["origClientOrderId"] = order.client_order_id
        answer["clientOrderId"] = f"cancel{order.order_id}"
        answer["transactTime"] = order.update_time
        return web.json_response(answer)

    def _open_orders(self, params: Params) -> web.Response:
        symbol = params.get("symbol")
        chosen = [o for o in self.orders if o.status in _OPEN and symbol in (None, o.symbol)]
        return web.json_response([o.as_query() for o in chosen])

    def _account(self, params: Params) -> web.Response:
        assets = sorted(set(self.free) | set(self.locked))
        return web.json_response(
            {
                "makerCommission": int(self.maker_fee * 10000),
                "takerCommission": int(self.taker_fee * 10000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": _now_ms(),
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": _fmt(self.free.get(a, Decimal(0))), "locked": _fmt(self.locked.get(a, Decimal(0)))}
                    for a in assets
                ],
                "permissions": ["SPOT"],
                "uid": 354937868,
            }
        )

    def _my_trades(self, params: Params) -> web.Response:
        symbol = params.get("symbol")
        if symbol not in self.filters:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        order_id = params.get("orderId")
        rows = []
        for order in self.orders:
            if order.symbol != symbol or (order_id is not None and str(order.order_id) != order_id):
                continue
            for t in order.trades:
                rows.append(
                    {
                        "symbol": symbol,
                        "id": t.trade_id,
                        "orderId": order.order_id,
                        "orderListId": -1,
                        "price": _fmt(t.price),
                        "qty": _fmt(t.qty),
                        "quoteQty": _fmt(t.price * t.qty),
                        "commission": _fmt(t.commission),
                        "commissionAsset": t.commission_asset,
                        "time": t.time,
                        "isBuyer": order.side == "BUY",
                        "isMaker": t.maker,
                        "isBestMatch": True,
                    }
                )
        return web.json_response(sorted(rows, key=lambda row: row["id"]))

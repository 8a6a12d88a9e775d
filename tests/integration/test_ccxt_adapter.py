"""The ccxt adapter against the local fake of Binance's spot REST API.

ccxt signs every request for real (HMAC-SHA256 under the test secret, X-MBX-APIKEY header,
timestamp); the fake verifies the signature and keeps its own orders and balances, so "one
order on the server" is checked on the server's side.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from infra.exchanges.adapter import ExchangeAdapter, OrderOutcomeUnknown, OrderRejected, RateLimited
from infra.exchanges.ccxt_adapter import CcxtAdapter
from protocol import OrderRequest, OrderStatus, client_order_id_for
from tests.support.fake_binance import ORDER, TEST_API_KEY, TEST_SECRET, FakeBinance

pytestmark = pytest.mark.integration

PRICE = Decimal("42000.10")


def order_request(**overrides: Any) -> OrderRequest:
    signal_id = uuid.uuid4()
    fields: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "correlation_id": uuid.uuid4(),
        "causation_id": signal_id,
        "source": "risk_manager",
        "signal_id": signal_id,
        "client_order_id": client_order_id_for(signal_id),
        "strategy_id": "sma_cross",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "order_type": "MARKET",
        "quantity": Decimal("0.01"),
        "reference_price": PRICE,
        "reference_time": datetime.now(UTC).replace(second=0, microsecond=0),
        "reserved_asset": "USDT",
        "reserved_amount": Decimal("430"),
        "expires_at": datetime.now(UTC) + timedelta(minutes=5),
    }
    fields.update(overrides)
    return OrderRequest(**fields)


@contextlib.asynccontextmanager
async def trading(
    balances: dict[str, str] | None = None, **adapter_options: Any
) -> AsyncIterator[tuple[FakeBinance, CcxtAdapter]]:
    async with FakeBinance(balances=balances or {"USDT": "1000", "BTC": "0.5"}) as fake:
        fake.account.set_price("BTCUSDT", PRICE)
        options: dict[str, Any] = {"api_key": TEST_API_KEY, "secret": TEST_SECRET, "api_base": fake.url}
        options.update(adapter_options)
        adapter = CcxtAdapter("binance", **options)
        try:
            yield fake, adapter
        finally:
            await adapter.close()


def posts(fake: FakeBinance) -> int:
    return sum(1 for r in fake.requests if r.path == ORDER and r.method == "POST")


async def test_adapter_satisfies_the_protocol() -> None:
    async with trading() as (_, adapter):
        assert isinstance(adapter, ExchangeAdapter)
        assert adapter.name == "binance"


async def test_market_buy_fills_with_exact_fills_and_fee() -> None:
    async with trading() as (fake, adapter):
        order = order_request()
        state = await adapter.place(order)

        assert state.status is OrderStatus.FILLED
        assert state.client_order_id == order.client_order_id
        assert (state.quantity, state.filled, state.average_price) == (Decimal("0.01"), Decimal("0.01"), PRICE)
        [server_order] = fake.account.orders_with(order.client_order_id)  # the exchange's client id was set
        assert state.exchange_order_id == str(server_order.order_id)
        [fill] = state.fills
        [trade] = server_order.trades
        assert fill.trade_id == str(trade.trade_id)
        assert (fill.quantity, fill.price) == (Decimal("0.01"), PRICE)
        assert (fill.fee, fill.fee_currency) == (Decimal("0.00001"), "BTC")  # 0.1 % of the BTC bought
        assert await adapter.balances() == {"USDT": Decimal("579.999"), "BTC": Decimal("0.50999")}
        # A later query reports the same fills (from myTrades, as queries carry none).
        again = await adapter.fetch(order.client_order_id, "BTC/USDT")
        assert again is not None and again.fills == state.fills and again.status is OrderStatus.FILLED


async def test_market_sell_pays_the_fee_in_quote() -> None:
    async with trading() as (_, adapter):
        state = await adapter.place(order_request(side="SELL", reserved_asset="BTC", reserved_amount=Decimal("0.01")))
        [fill] = state.fills
        assert (fill.fee, fill.fee_currency) == (Decimal("0.420001"), "USDT")
        assert await adapter.balances() == {"USDT": Decimal("1419.580999"), "BTC": Decimal("0.49")}


async def test_timeout_after_acceptance_is_unknown_and_resolved_by_query() -> None:
    async with trading(timeout=0.3) as (fake, adapter):
        fake.hold_next(1, seconds=5)  # the server fills the order, the answer comes too late
        order = order_request()
        with pytest.raises(OrderOutcomeUnknown):
            await adapter.place(order)
        assert len(fake.account.orders_with(order.client_order_id)) == 1

        resolved = await adapter.fetch(order.client_order_id, "BTC/USDT")
        assert resolved is not None
        assert resolved.status is OrderStatus.FILLED and resolved.filled == Decimal("0.01")
        assert [f.fee for f in resolved.fills] == [Decimal("0.00001")]

        # The order message redelivered: place() finds the order instead of sending another.
        again = await adapter.place(order)
        assert again.exchange_order_id == resolved.exchange_order_id
        assert posts(fake) == 1
        assert len(fake.account.orders_with(order.client_order_id)) == 1


async def test_insufficient_funds_is_rejected_with_the_exchange_message() -> None:
    async with trading(balances={"USDT": "10"}) as (fake, adapter):
        with pytest.raises(OrderRejected, match="Account has insufficient balance for requested action"):
            await adapter.place(order_request())
        assert fake.account.orders == []


async def test_filter_failures_are_rejected() -> None:
    async with trading(balances={"USDT": "1000000", "BTC": "10000"}) as (fake, adapter):
        # Below the 5 USDT minimum notional: Binance -1013 "Filter failure: NOTIONAL".
        with pytest.raises(OrderRejected, match="Filter failure: NOTIONAL"):
            await adapter.place(order_request(quantity=Decimal("0.0001")))
        # On the lot grid but above LOT_SIZE maxQty: -1013 "Filter failure: LOT_SIZE".
        with pytest.raises(OrderRejected, match="LOT_SIZE"):
            await adapter.place(order_request(side="SELL", quantity=Decimal("9001"), reserved_asset="BTC"))
        assert posts(fake) == 2
        assert fake.account.orders == []


async def test_quantity_or_price_off_the_grid_is_rejected_before_sending() -> None:
    async with trading() as (fake, adapter):
        with pytest.raises(OrderRejected, match="lot step"):
            await adapter.place(order_request(quantity=Decimal("0.010001")))
        with pytest.raises(OrderRejected, match="tick"):
            await adapter.place(order_request(order_type="LIMIT", limit_price=Decimal("40000.005")))
        assert fake.requests_to(ORDER) == []


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_on_submit_is_unknown(status: int) -> None:
    async with trading() as (fake, adapter):
        fake.fail_next(1, status, path=ORDER, method="POST")
        order = order_request()
        with pytest.raises(OrderOutcomeUnknown):
            await adapter.place(order)
        assert await adapter.fetch(order.client_order_id, "BTC/USDT") is None


async def test_429_on_submit_is_rate_limited_and_nothing_is_placed() -> None:
    async with trading() as (fake, adapter):
        fake.fail_next(1, 429, path=ORDER, method="POST")
        with pytest.raises(RateLimited):
            await adapter.place(order_request())
        assert fake.account.orders == []


async def test_reads_back_off_after_429_then_succeed() -> None:
    async with trading(backoff=0.01) as (fake, adapter):
        fake.fail_next(1, 429, path="/api/v3/account", retry_after=0)
        assert await adapter.balances() == {"USDT": Decimal("1000"), "BTC": Decimal("0.5")}
        assert [r.status for r in fake.requests_to("/api/v3/account")] == [429, 200]


async def test_reads_give_up_after_the_retry_budget() -> None:
    async with trading(backoff=0.01, read_retries=1) as (fake, adapter):
        fake.fail_next(2, 429, path="/api/v3/account", retry_after=0)
        with pytest.raises(RateLimited):
            await adapter.balances()
        assert len(fake.requests_to("/api/v3/account")) == 2


async def test_limit_order_rests_is_listed_and_cancelled() -> None:
    async with trading() as (fake, adapter):
        order = order_request(order_type="LIMIT", limit_price=Decimal("40000.00"))
        placed = await adapter.place(order)
        assert placed.status is OrderStatus.NEW and placed.filled == 0 and placed.fills == ()
        assert fake.account.balance("USDT") == (Decimal("600"), Decimal("400"))

        [listed] = await adapter.open_orders("BTC/USDT")
        assert listed.client_order_id == order.client_order_id and listed.status is OrderStatus.NEW
        assert [o.client_order_id for o in await adapter.open_orders()] == [order.client_order_id]
        # Locked funds still count in the total.
        assert (await adapter.balances())["USDT"] == Decimal("1000")

        cancelled = await adapter.cancel(order.client_order_id, "BTC/USDT")
        assert cancelled.status is OrderStatus.CANCELED and cancelled.client_order_id == order.client_order_id
        assert await adapter.open_orders() == []
        assert fake.account.balance("USDT") == (Decimal("1000"), Decimal("0"))
        # Cancelling again reports the finished order rather than failing.
        assert (await adapter.cancel(order.client_order_id, "BTC/USDT")).status is OrderStatus.CANCELED
        with pytest.raises(OrderRejected, match="no order"):
            await adapter.cancel("tb-unknown", "BTC/USDT")


async def test_partial_fill_then_cancel_keeps_the_fills() -> None:
    async with trading() as (fake, adapter):
        order = order_request(order_type="LIMIT", limit_price=Decimal("40000.00"))
        await adapter.place(order)
        fake.account.fill_resting(order.client_order_id, Decimal("0.004"))

        partial = await adapter.fetch(order.client_order_id, "BTC/USDT")
        assert partial is not None and partial.status is OrderStatus.PARTIALLY_FILLED
        assert (partial.filled, partial.average_price) == (Decimal("0.004"), Decimal("40000"))
        assert [(f.quantity, f.price, f.fee) for f in partial.fills] == [
            (Decimal("0.004"), Decimal("40000"), Decimal("0.000004"))
        ]
        cancelled = await adapter.cancel(order.client_order_id, "BTC/USDT")
        assert cancelled.status is OrderStatus.CANCELED and cancelled.filled == Decimal("0.004")
        assert cancelled.fills == partial.fills
        assert fake.account.balance("USDT") == (Decimal("840"), Decimal("0"))


async def test_balances_are_exact_decimals() -> None:
    async with trading(balances={"USDT": "1234.56789012", "BTC": "0.00000001", "ETH": "0"}) as (_, adapter):
        assert await adapter.balances() == {"USDT": Decimal("1234.56789012"), "BTC": Decimal("0.00000001")}


async def test_unknown_order_fetches_as_none() -> None:
    async with trading() as (fake, adapter):
        assert await adapter.fetch("tb-never-placed", "BTC/USDT") is None
        assert [r.status for r in fake.requests_to(ORDER)] == [400]  # Binance -2013


async def test_duplicate_client_id_answer_returns_the_existing_order() -> None:
    async with trading() as (fake, adapter):
        order = order_request(order_type="LIMIT", limit_price=Decimal("40000.00"))
        first = await adapter.place(order)
        # The pre-check misses the order once (a stale read); the exchange then refuses the new
        # order as a duplicate (-2010), and the adapter answers with the order that exists.
        query = fake.routes[("GET", ORDER)]
        misses = [1]

        async def stale_once(request: web.Request) -> web.StreamResponse:
            if misses:
                misses.pop()
                return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
            return await query(request)

        fake.add_route("GET", ORDER, stale_once)
        again = await adapter.place(order)
        assert again.exchange_order_id == first.exchange_order_id and again.status is OrderStatus.NEW
        assert [r.status for r in fake.requests if r.path == ORDER and r.method == "POST"] == [200, 400]
        assert len(fake.account.orders_with(order.client_order_id)) == 1

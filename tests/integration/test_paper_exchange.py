"""The paper exchange on the real Postgres and InfluxDB: exact fills, rejections with reasons,
resting limit orders filled only by a later crossing candle, balances, idempotent placement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from infra.db import create_engine, session_factory, upgrade_head
from infra.db.models import PaperFill, PaperOrder
from infra.exchanges.adapter import OrderRejected
from infra.exchanges.paper import PaperConfig, PaperExchange
from infra.influx import InfluxPriceStore, PriceStoreUnavailable
from protocol import Candle, OrderStatus
from tests.support.bus import make_candle
from tests.support.orders import make_order

pytestmark = pytest.mark.integration

T1 = make_candle(1).open_time  # candle 1: close 47004.1, low 46993.75, high 47013.5


def candle(open_time: datetime, low: str, high: str) -> Candle:
    return Candle.closed(
        source="test", exchange="binance", symbol="BTC/USDT", timeframe="15m", open_time=open_time,
        open=D(high), high=D(high), low=D(low), close=D(low), volume=D(1),
    )


@pytest.fixture
async def paper(postgres_url: str, influxdb_database: tuple[str, str]) -> AsyncIterator[PaperExchange]:
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    prices = InfluxPriceStore(*influxdb_database)
    await prices.write_candles([make_candle(i) for i in range(3)])
    exchange = PaperExchange(session_factory(engine), prices, PaperConfig(timeframe="15m", slippage_bps=D(5)))
    await exchange.seed_balances({"USDT": D("1000")})
    try:
        yield exchange
    finally:
        await prices.close()
        await engine.dispose()


async def count(exchange: PaperExchange, model: type) -> int:
    async with exchange._sessions() as session:  # noqa: SLF001 - the test looks into the simulated store
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_market_buy_fills_at_the_reference_candle_with_slippage_and_fee(paper: PaperExchange) -> None:
    order = make_order(quantity="0.01", reference_time=T1)
    state = await paper.place(order)
    # close of candle 1 (47004.1) x 1.0005 = 47027.60205 -> up to the tick; candle 2 (the
    # decision's future) is not used.
    assert state.status is OrderStatus.FILLED
    assert (state.filled, state.average_price) == (D("0.01"), D("47027.61"))
    [fill] = state.fills
    assert (fill.price, fill.quantity, fill.fee, fill.fee_currency) == (D("47027.61"), D("0.01"), D("0.4702761"), "USDT")
    assert await paper.balances() == {"USDT": D("529.2536239"), "BTC": D("0.01")}
    # Placing the same client order id again returns the same order: one order, one fill.
    again = await paper.place(order)
    assert again == state
    assert await count(paper, PaperOrder) == 1 and await count(paper, PaperFill) == 1
    assert await paper.fetch(order.client_order_id, order.symbol) == state


async def test_no_price_insufficient_funds_and_minimums_are_rejections_with_reasons(paper: PaperExchange) -> None:
    cases = [
        (make_order(reference_time=datetime(2020, 1, 1, tzinfo=UTC)), "no price: no 15m candle of BTC/USDT on binance at 2020-01-01T00:00:00+00:00"),
        (make_order(quantity="0.03", reference_time=T1), "insufficient funds: needs 1412.2391283 USDT, 1000 USDT free"),
        (make_order(quantity="0.0001", reference_time=T1), "notional 4.702761 (0.0001 x 47027.61) is below the minimum notional 5.0 of BTC/USDT"),
        (make_order(quantity="0.000015", limit_price="40000", reference_time=T1), "not a multiple of the lot step"),
        (make_order(side="SELL", quantity="0.01", reference_time=T1), "insufficient funds: needs 0.01 BTC, 0 BTC free"),
    ]
    for order, reason in cases:
        with pytest.raises(OrderRejected) as caught:
            await paper.place(order)
        assert reason in str(caught.value)
        state = await paper.fetch(order.client_order_id, order.symbol)
        assert state is not None and state.status is OrderStatus.REJECTED and reason in (state.reason or "")
    assert await paper.balances() == {"USDT": D("1000")}
    assert await count(paper, PaperFill) == 0


async def test_an_unreachable_price_store_is_no_rejection_and_the_order_fills_once_it_answers(
    paper: PaperExchange, influxdb_database: tuple[str, str]
) -> None:
    from infra.faults import is_transient
    from tests.support.own_services import free_port

    order = make_order(quantity="0.01", reference_time=T1)
    reachable = paper._prices  # noqa: SLF001 - swapped for a store nobody listens for, then back
    paper._prices = InfluxPriceStore(f"http://127.0.0.1:{free_port()}", influxdb_database[1], max_attempts=1)  # noqa: SLF001
    try:
        with pytest.raises(PriceStoreUnavailable) as caught:
            await paper.place(order)
    finally:
        await paper._prices.close()  # noqa: SLF001
        paper._prices = reachable  # noqa: SLF001
    # Transient, so execution's bus retries the order; nothing was recorded as refused.
    assert is_transient(caught.value)
    assert await paper.fetch(order.client_order_id, order.symbol) is None
    state = await paper.place(order)
    assert (state.status, state.filled) == (OrderStatus.FILLED, D("0.01"))


async def test_limit_rests_then_fills_only_when_a_later_candle_crosses_it(paper: PaperExchange) -> None:
    order = make_order(quantity="0.01", limit_price="46990", reference_time=T1)
    state = await paper.place(order)
    assert state.status is OrderStatus.NEW and state.filled == 0
    # Locked: 469.90 + 0.1 % maker fee.
    assert await paper.free_balances() == {"USDT": (D("529.6301"), D("470.3699"))}
    assert await paper.on_candle(candle(T1, low="46900", high="47000")) == []  # the decision's own candle
    assert await paper.on_candle(candle(T1 + timedelta(minutes=15), low="46990.01", high="47000")) == []
    assert (await paper.open_orders())[0].client_order_id == order.client_order_id
    [filled] = await paper.on_candle(candle(T1 + timedelta(minutes=30), low="46990", high="47000"))
    assert (filled.status, filled.filled, filled.average_price) == (OrderStatus.FILLED, D("0.01"), D("46990"))
    assert filled.fills[0].fee == D("0.469900")
    assert await paper.free_balances() == {"USDT": (D("529.6301"), D("0")), "BTC": (D("0.01"), D("0"))}
    # The same candle again (a redelivery) changes nothing.
    assert await paper.on_candle(candle(T1 + timedelta(minutes=30), low="46990", high="47000")) == []
    assert await paper.open_orders() == []


async def test_marketable_limit_and_sell_limit(paper: PaperExchange) -> None:
    buy = await paper.place(make_order(quantity="0.01", limit_price="47100", reference_time=T1))
    assert (buy.status, buy.average_price) == (OrderStatus.FILLED, D("47027.61"))
    sell = await paper.place(make_order(side="SELL", quantity="0.01", limit_price="47100", reference_time=T1))
    assert sell.status is OrderStatus.NEW
    assert (await paper.free_balances())["BTC"] == (D("0"), D("0.01"))
    [done] = await paper.on_candle(candle(T1 + timedelta(minutes=15), low="47000", high="47100"))
    assert done.average_price == D("47100")
    # 529.2536239 + 471.00 - 0.471 fee
    assert await paper.balances() == {"USDT": D("999.7826239"), "BTC": D("0")}


async def test_cancel_releases_the_lock_and_is_idempotent(paper: PaperExchange) -> None:
    order = make_order(quantity="0.01", limit_price="46000", reference_time=T1)
    await paper.place(order)
    canceled = await paper.cancel(order.client_order_id, order.symbol)
    assert canceled.status is OrderStatus.CANCELED
    assert await paper.free_balances() == {"USDT": (D("1000.0000"), D("0"))}
    assert (await paper.cancel(order.client_order_id, order.symbol)).status is OrderStatus.CANCELED
    assert await paper.on_candle(candle(T1 + timedelta(minutes=15), low="45000", high="47000")) == []
    with pytest.raises(OrderRejected, match="unknown order"):
        await paper.cancel("tb-doesnotexist", "BTC/USDT")


async def test_with_live_data_a_market_order_fills_at_the_newest_candle(paper: PaperExchange) -> None:
    live = PaperExchange(paper._sessions, paper._prices, PaperConfig(timeframe="15m", slippage_bps=D(5), latest_price=True))  # noqa: SLF001
    state = await live.place(make_order(quantity="0.01", reference_time=T1))
    # Newest stored candle is candle 2: close 47005.1 x 1.0005 = 47028.60255 -> 47028.61.
    assert state.average_price == D("47028.61")

"""The console API's read routes on real Postgres and InfluxDB: every answer equals what the
ledger and the price store hold, seeded through the code paths the agents use (Ledger.approve /
apply_report, the execution agent's OrderStore, InfluxPriceStore writes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from agents.execution.store import OrderStore
from infra.db import session_factory
from infra.db.ledger import DecisionRecord, Ledger
from infra.influx import InfluxPriceStore
from infra.influx.lineprotocol import CANDLE_MEASUREMENT
from protocol import ExitReason, Indicators, IndicatorSnapshot, OrderStatus, RejectionReason, Side
from tests.support.api import READ, api_settings, running_app
from tests.support.bus import make_candle
from tests.support.ledger import CONSUMER, EXCHANGE, STRATEGY, migrated_ledger, new_reservation, query, report, reserve
from tests.support.orders import hold, make_order

pytestmark = pytest.mark.integration

D = Decimal
CANDLES = 6


@dataclass
class Seeded:
    ledger: Ledger
    database_url: str
    prices: InfluxPriceStore
    order_id: str


async def _trade(ledger: Ledger, side: Side, quantity: str, price: str, fee: str, trade: str,
                 exit_reason: ExitReason | None = None) -> None:
    reservation = new_reservation(side, amount=D("1000") if side is Side.BUY else D(quantity), quantity=D(quantity))
    await reserve(ledger, reservation)
    filled = report(reservation, OrderStatus.FILLED, cumulative=quantity, last=quantity,
                    price=price, average=price, fee=fee, fee_currency="USDT", trade_id=trade)
    await ledger.apply_report(CONSUMER, filled.model_copy(update={"exit_reason": exit_reason}))


async def _reject(ledger: Ledger, reason: RejectionReason, detail: str, symbol: str = "BTC/USDT") -> None:
    signal_id = uuid.uuid4()
    record = DecisionRecord(signal_id=signal_id, strategy_id="rsi-btc-1m", symbol=symbol, side="BUY", detail=detail,
                            inputs={"reference_price": D("100")}, reason=reason)
    assert await ledger.reject(CONSUMER, signal_id, record)


@pytest.fixture
async def seeded(postgres_url: str, influxdb_database: tuple[str, str]) -> AsyncIterator[Seeded]:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        await _trade(ledger, Side.BUY, "1", "100", "0.1", "t1")
        await _trade(ledger, Side.SELL, "1", "110", "0.11", "t2", ExitReason.TAKE_PROFIT)
        await _trade(ledger, Side.BUY, "0.5", "120", "0.06", "t3")
        await _reject(ledger, RejectionReason.LOW_CONFIDENCE, "confidence 0.2 below 0.5")
        await _reject(ledger, RejectionReason.LOW_CONFIDENCE, "confidence 0.3 below 0.5")
        await _reject(ledger, RejectionReason.STALE_PRICE, "price 20 min old")
        # An order as the execution agent stores it: claimed, then refused with its reason.
        # A SELL of the strategy holding the 0.5 bought above: the ledger refuses a SELL beyond a position.
        order = make_order(side="SELL", quantity="0.01", strategy_id=STRATEGY, exchange=EXCHANGE, exit_reason=ExitReason.STOP_LOSS,
                           exit_price=D("46000"))
        await hold(postgres_url, order)
        store = OrderStore(session_factory(engine), "execution")
        now = datetime.now(UTC)
        await store.claim(order, "execution.test", now)
        await store.record_status(order, OrderStatus.REJECTED, "below minimum notional", now)
        async with InfluxPriceStore(*influxdb_database) as prices:
            candles = [make_candle(i) for i in range(CANDLES)]
            await prices.write_candles(candles)
            await prices.write_indicators([
                IndicatorSnapshot.caused_by(c, source="technical_analysis", exchange=c.exchange, symbol=c.symbol,
                                            timeframe=c.timeframe, candle_time=c.open_time, close=c.close,
                                            indicators=Indicators(rsi=D("40") + i, sma_fast=c.close - 1),
                                            extra={"rsi_7": D("30") + i} if i % 2 else {})
                for i, c in enumerate(candles)
            ])
            yield Seeded(ledger, postgres_url, prices, order.client_order_id)


@pytest.fixture
async def client(seeded: Seeded, rabbitmq_url: str, influxdb_database: tuple[str, str]) -> AsyncIterator[Any]:
    settings = api_settings(rabbitmq_url, seeded.database_url, influxdb_database, "unused_exchange")
    async with running_app(settings, connect_bus=False) as (_, http):
        yield http


async def get(client: Any, path: str, **params: Any) -> Any:
    response = await client.get(f"/api/v1{path}", params=params, headers=READ)
    assert response.status_code == 200, response.text
    return response.json()


def dec(value: Any) -> Decimal | None:
    return None if value is None else D(value)


async def test_balances_and_positions_equal_the_ledger_with_unrealised_pnl_at_the_latest_stored_close(
    client: Any, seeded: Seeded
) -> None:
    balances = (await get(client, "/balances"))["balances"]
    expected = await seeded.ledger.balances()
    assert {b["asset"]: (D(b["total"]), D(b["available"]), D(b["reserved"])) for b in balances} == {
        a: (v.total, v.available, v.reserved) for a, v in expected.items()
    }
    latest = await seeded.prices.latest_candle("binance", "BTC/USDT", "15m")
    assert latest is not None
    (position,) = (await get(client, "/positions"))["positions"]
    (ledger_position,) = [p for p in await seeded.ledger.positions() if p.quantity]
    assert D(position["quantity"]) == ledger_position.quantity == D("0.5")
    assert D(position["average_entry_price"]) == ledger_position.average_entry_price
    assert D(position["realised_pnl"]) == ledger_position.realised_pnl == D("10")
    assert D(position["mark_price"]) == latest.close
    assert D(position["unrealised_pnl"]) == (latest.close - D("120")) * D("0.5")
    assert position["price_note"] is None
    # Flat positions too on request: the ledger's full list.
    every = (await get(client, "/positions", include_flat="true"))["positions"]
    assert len(every) == len(await seeded.ledger.positions())


async def test_a_position_without_a_stored_price_says_so_and_invents_nothing(
    client: Any, seeded: Seeded, influxdb_database: tuple[str, str]
) -> None:
    url, database = influxdb_database
    async with httpx.AsyncClient(base_url=url, timeout=10) as influx:  # the price store loses its candles
        (await influx.post("/query", data={"db": database, "q": f"DROP SERIES FROM {CANDLE_MEASUREMENT}"})).raise_for_status()
    assert await seeded.prices.latest_candle("binance", "BTC/USDT", "15m") is None
    (position,) = (await get(client, "/positions"))["positions"]
    assert position["mark_price"] is None and position["unrealised_pnl"] is None
    assert "no stored 15m candle of BTC/USDT" in position["price_note"]
    assert (await get(client, "/pnl"))["unrealised_pnl"] is None


async def test_fills_decisions_rejections_and_pnl_equal_the_ledger(client: Any, seeded: Seeded) -> None:
    fills = await get(client, "/fills")
    rows = await query(seeded.database_url, "SELECT trade_id, side, quantity, price, fee FROM fills ORDER BY id DESC")
    assert fills["total"] == 3
    assert [(f["trade_id"], f["side"], D(f["quantity"]), D(f["price"]), D(f["fee"])) for f in fills["items"]] == [tuple(r) for r in rows]
    page = await get(client, "/fills", limit=1, offset=1)
    assert [f["trade_id"] for f in page["items"]] == ["t2"] and page["total"] == 3
    assert [f["exit_reason"] for f in fills["items"]] == [None, "TAKE_PROFIT", None]

    rejected = await get(client, "/decisions", decision="REJECTED")
    audit = await query(seeded.database_url, "SELECT reason, detail FROM risk_decisions WHERE decision = 'REJECTED' ORDER BY id DESC")
    assert [(d["reason"], d["detail"]) for d in rejected["items"]] == [tuple(r) for r in audit]
    approved = await get(client, "/decisions", decision="APPROVED")
    assert approved["total"] == 4  # three trades and the execution test order

    reasons = (await get(client, "/rejections/by-reason"))["reasons"]
    assert [(r["reason"], r["count"], r["last_detail"]) for r in reasons] == [
        ("LOW_CONFIDENCE", 2, "confidence 0.3 below 0.5"), ("STALE_PRICE", 1, "price 20 min old"),
    ]

    pnl = await get(client, "/pnl")
    positions = await seeded.ledger.positions()
    assert D(pnl["realised_pnl"]) == sum(p.realised_pnl for p in positions) == D("10")
    assert D(pnl["fees_paid"]) == sum(p.fees_paid for p in positions) == D("0.27")
    curve = await get(client, "/equity")
    assert [D(p["net_realised"]) for p in curve["points"]] == [D("-0.1"), D("9.79"), D("9.73")]
    assert D(curve["points"][-1]["net_realised"]) == D(pnl["net_realised"])
    assert D(curve["max_drawdown"]) == D("0.1")


async def test_orders_with_their_transitions_equal_the_execution_store(client: Any, seeded: Seeded) -> None:
    listed = await get(client, "/orders", status="REJECTED")
    assert [o["client_order_id"] for o in listed["items"]] == [seeded.order_id]
    assert listed["items"][0]["reason"] == "below minimum notional"
    assert listed["items"][0]["exit_reason"] == "STOP_LOSS"
    detail = await get(client, f"/orders/{seeded.order_id}")
    events = await query(
        seeded.database_url,
        "SELECT e.seq, e.status, e.reason FROM order_events e JOIN orders o ON o.id = e.order_id "
        "WHERE o.client_order_id = :id ORDER BY e.seq", id=seeded.order_id,
    )
    assert events and [(t["seq"], t["status"], t["reason"]) for t in detail["transitions"]] == [tuple(e) for e in events]
    missing = await client.get("/api/v1/orders/no-such-order", headers=READ)
    assert missing.status_code == 404


async def test_candles_with_indicators_equal_the_price_store(client: Any, seeded: Seeded) -> None:
    answer = await get(client, "/candles", symbol="BTC/USDT", limit=4)
    stored = await seeded.prices.last_candles("binance", "BTC/USDT", "15m", 4)
    assert [(D(c["open"]), D(c["close"]), D(c["volume"])) for c in answer["candles"]] == [
        (c.open, c.close, c.volume) for c in stored
    ]
    assert [D(row["values"]["rsi"]) for row in answer["indicators"]] == [D("42"), D("43"), D("44"), D("45")]
    # A strategy's declared indicator (decision 0022) next to the fixed set, where it was stored.
    assert [row["values"].get("rsi_7") for row in answer["indicators"]] == [None, "33", None, "35"]
    ranged = await get(client, "/candles", symbol="BTC/USDT", since=stored[0].open_time.isoformat(),
                       until=stored[1].open_time.isoformat())
    assert [c["open_time"] for c in ranged["candles"]] == [stored[0].open_time.isoformat().replace("+00:00", "Z")]


async def test_signals_and_markers_for_a_symbol(client: Any, seeded: Seeded) -> None:
    signals = (await get(client, "/signals", symbol="BTC/USDT"))["signals"]
    decided = await query(seeded.database_url, "SELECT signal_id, decision FROM risk_decisions WHERE symbol = 'BTC/USDT' ORDER BY id")
    assert [(s["signal_id"], s["decision"]) for s in signals] == [(str(r[0]), r[1]) for r in decided]
    markers = await get(client, "/markers", symbol="BTC/USDT")
    assert [f["trade_id"] for f in markers["fills"]] == ["t1", "t2", "t3"]


async def test_a_wide_candle_window_reads_only_the_candles_it_answers(
    seeded: Seeded, rabbitmq_url: str, influxdb_database: tuple[str, str]
) -> None:
    # Years of window with limit=2: the API must ask the store for 2 rows, not load the range.
    settings = api_settings(rabbitmq_url, seeded.database_url, influxdb_database, "unused_exchange")
    read: list[int] = []
    async with running_app(settings, connect_bus=False) as (app, http):
        store = app.state.services.prices
        real_query = store._http.query

        async def counting(statement: str, *args: Any, **kwargs: Any) -> Any:
            rows = await real_query(statement, *args, **kwargs)
            if f'"{CANDLE_MEASUREMENT}"' in statement or f" {CANDLE_MEASUREMENT} " in statement:
                read.append(len(rows))
            return rows

        store._http.query = counting
        answer = await get(http, "/candles", symbol="BTC/USDT", since="2000-01-01T00:00:00Z",
                           until="2100-01-01T00:00:00Z", limit=2)
    stored = await seeded.prices.last_candles("binance", "BTC/USDT", "15m", 2)
    assert [c["open_time"] for c in answer["candles"]] == [c.open_time.isoformat().replace("+00:00", "Z") for c in stored]
    assert read and sum(read) <= 2, f"rows read from the price store: {read}"


async def test_open_orders_are_those_whose_status_is_not_final(seeded: Seeded) -> None:
    from agents.api.queries import LedgerReads, OrderFilter, TimeRange
    from infra.db import create_engine

    engine = create_engine(seeded.database_url)
    try:
        sessions = session_factory(engine)
        reads = LedgerReads(sessions)
        assert (await reads.orders(OrderFilter(open_only=True), TimeRange(), 10, 0))[1] == 0  # the seeded one is REJECTED
        order = make_order(quantity="0.02")
        await hold(seeded.database_url, order)
        await OrderStore(sessions, "execution").claim(order, "execution.test", datetime.now(UTC))
        rows, total = await reads.orders(OrderFilter(open_only=True), TimeRange(), 10, 0)
        assert total == 1 and [r.client_order_id for r in rows] == [order.client_order_id]
        assert (await reads.orders(OrderFilter(), TimeRange(), 10, 0))[1] == 2
    finally:
        await engine.dispose()

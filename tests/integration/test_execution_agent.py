"""The execution agent in process on the real RabbitMQ, Postgres and InfluxDB (paper mode):
exact FILLED reports, one order per client_order_id however often it arrives, cancel, emergency
stop, paper limit fills from candles, expiry, reconciliation after a restart, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import text

from agents.execution import ExecutionAgent
from agents.execution.settings import ExecutionSettings
from infra.bus import Bus, Topology, system_topology
from infra.db import create_engine, session_factory, upgrade_head
from infra.exchanges.adapter import OrderOutcomeUnknown, RateLimited
from infra.exchanges.paper import PaperConfig, PaperExchange
from infra.influx import InfluxPriceStore
from protocol import CancelOrder, Candle, EmergencyStop, ExecutionReport, Message, OrderRequest, OrderStatus, decode
from tests.support.bus import cleanup, drain, make_candle, wait_until
from tests.support.orders import hold, make_order

pytestmark = pytest.mark.integration

T1 = make_candle(1).open_time


@dataclass
class World:
    rabbitmq_url: str
    postgres_url: str
    topology: Topology
    settings: ExecutionSettings
    bus: Bus

    async def publish(self, *messages: Message) -> None:
        """Publish as the risk manager would: every order's reservation is committed first."""
        for message in messages:
            if isinstance(message, OrderRequest):
                await hold(self.postgres_url, message)
            await self.bus.publish(message)

    async def reports(self, expect: int, timeout: float = 10.0) -> list[ExecutionReport]:
        queue = f"{self.topology.exchange}.risk_manager.execution_reports"
        return [decode(m.body, ExecutionReport) for m in await drain(self.rabbitmq_url, queue, expect, timeout)]

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        engine = create_engine(self.postgres_url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(statement), params)).all())
        finally:
            await engine.dispose()


def settings_for(rabbitmq_url: str, postgres_url: str, influx: tuple[str, str], exchange: str, **extra: str) -> ExecutionSettings:
    values = {
        "RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": postgres_url, "INFLUXDB_URL": influx[0],
        "INFLUXDB_DATABASE": influx[1], "BUS_EXCHANGE": exchange, "TIMEFRAME": "15m",
        "PAPER_BALANCES": "USDT:1000", "PAPER_SLIPPAGE_BPS": "5", "HEARTBEAT_INTERVAL": "1",
        "EXECUTION_RECONCILE_INTERVAL": "300", **extra,
    }
    return ExecutionSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def world(rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str]) -> AsyncIterator[World]:
    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as prices:
        await prices.write_candles([make_candle(i) for i in range(3)])
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    settings = settings_for(rabbitmq_url, postgres_url, influxdb_database, topology.exchange)
    bus = Bus(rabbitmq_url, topology, connection_name="execution-test")
    await bus.connect()
    try:
        yield World(rabbitmq_url, postgres_url, topology, settings, bus)
    finally:
        await bus.close()
        await cleanup(rabbitmq_url, topology)


class Running:
    """An ExecutionAgent running in this event loop."""

    def __init__(self, world: World, settings: ExecutionSettings | None = None) -> None:
        self.agent = ExecutionAgent(settings or world.settings, world.topology)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ExecutionAgent:
        self.task = asyncio.create_task(self.agent.run(install_signal_handlers=False))
        assert await wait_until(lambda: self.agent.health.value == "HEALTHY" or self.task.done(), timeout=20)  # type: ignore[union-attr]
        assert not self.task.done(), self.task.exception()  # type: ignore[union-attr]
        return self.agent

    async def __aexit__(self, *exc: object) -> None:
        self.agent.request_stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


async def test_market_order_is_filled_and_reported_with_exact_numbers_once(world: World) -> None:
    order = make_order(quantity="0.01", reference_time=T1)
    async with Running(world):
        await world.publish(order)
        [report] = await world.reports(1)
        # The same message again, and another message for the same client_order_id.
        await world.publish(order, order.model_copy(update={"message_id": uuid.uuid4()}))
        sentinel = make_order(quantity="0.001", reference_time=T1)  # handled after the duplicates
        await world.publish(sentinel)
        later = await world.reports(1)
    assert report.status is OrderStatus.FILLED
    assert (report.client_order_id, report.cumulative_filled_quantity, report.last_fill_quantity) == (order.client_order_id, D("0.01"), D("0.01"))
    assert (report.last_fill_price, report.average_price) == (D("47027.61"), D("47027.61"))
    assert (report.fee, report.fee_currency) == (D("0.4702761"), "USDT")
    assert report.causation_id == order.message_id and report.correlation_id == order.correlation_id
    assert report.exchange_order_id and report.exchange_order_id.startswith("paper-")
    # Only the sentinel's report came after the duplicates: nothing was placed twice.
    assert [r.client_order_id for r in later] == [sentinel.client_order_id]
    rows = await world.sql("SELECT status, filled, average_price, fees FROM orders WHERE client_order_id = :c", c=order.client_order_id)
    assert rows == [("FILLED", D("0.01"), D("47027.61"), D("0.4702761"))]
    assert await world.sql("SELECT count(*) FROM paper_orders WHERE client_order_id = :c", c=order.client_order_id) == [(1,)]
    assert await world.sql(
        "SELECT count(*) FROM paper_fills f JOIN paper_orders o ON o.id = f.order_id WHERE o.client_order_id = :c",
        c=order.client_order_id,
    ) == [(1,)]
    events = await world.sql("SELECT seq, status, message_id, published_at IS NOT NULL FROM order_events ORDER BY id")
    assert [(e[0], e[1], e[3]) for e in events] == [(1, "FILLED", True), (1, "FILLED", True)]
    assert events[0][2] == report.message_id


async def test_rejections_and_expiry_are_reported_without_a_fill(world: World) -> None:
    poor = make_order(quantity="0.05", reference_time=T1)
    expired = make_order(quantity="0.01", reference_time=T1, expires_in=timedelta(seconds=-1))
    async with Running(world):
        await world.publish(poor, expired)
        reports = {r.client_order_id: r for r in await world.reports(2)}
    assert reports[poor.client_order_id].status is OrderStatus.REJECTED
    assert "insufficient funds" in (reports[poor.client_order_id].reason or "")
    assert reports[expired.client_order_id].status is OrderStatus.EXPIRED
    assert await world.sql("SELECT count(*) FROM paper_orders WHERE client_order_id = :c", c=expired.client_order_id) == [(0,)]


async def test_limit_rests_is_cancelled_or_filled_by_a_later_candle(world: World) -> None:
    to_cancel = make_order(quantity="0.01", limit_price="46000", reference_time=T1)
    to_fill = make_order(quantity="0.001", limit_price="46990", reference_time=T1)
    async with Running(world):
        await world.publish(to_cancel, to_fill)
        assert {r.status for r in await world.reports(2)} == {OrderStatus.NEW}
        await world.publish(CancelOrder(source="operator", client_order_id=to_cancel.client_order_id, reason="test"))
        [canceled] = await world.reports(1)
        # A later candle reaching 46990 fills the other one through execution.candles.
        crossing = Candle.closed(source="test", exchange="binance", symbol="BTC/USDT", timeframe="15m",
                                 open_time=T1 + timedelta(minutes=15), open=D(47000), high=D(47010), low=D(46990),
                                 close=D(47000), volume=D(1))
        await world.publish(crossing)
        [filled] = await world.reports(1)
        # Cancelling a finished order (the risk manager does, for an expired reservation)
        # reports its final state again, under the same id.
        await world.publish(CancelOrder(source="risk_manager", client_order_id=to_fill.client_order_id, reason="expired"))
        [final] = await world.reports(1)
    assert final.message_id == filled.message_id and final.status is OrderStatus.FILLED
    assert (canceled.client_order_id, canceled.status) == (to_cancel.client_order_id, OrderStatus.CANCELED)
    assert (filled.client_order_id, filled.status, filled.last_fill_price) == (to_fill.client_order_id, OrderStatus.FILLED, D("46990"))
    assert filled.fee == D("0.046990")  # maker 0.1 % of 46.99


async def test_emergency_stop_cancels_open_orders_and_refuses_new_ones(world: World) -> None:
    limits = [make_order(quantity="0.001", limit_price=p, reference_time=T1) for p in ("46000", "45000")]
    async with Running(world):
        await world.publish(*limits)
        assert len(await world.reports(2)) == 2
        await world.publish(EmergencyStop(source="operator", active=True, reason="test", requested_by="pytest"))
        canceled = await world.reports(2)
        late = make_order(quantity="0.001", reference_time=T1)
        await world.publish(late)
        [refused] = await world.reports(1)
    assert {(r.client_order_id, r.status) for r in canceled} == {(o.client_order_id, OrderStatus.CANCELED) for o in limits}
    assert refused.status is OrderStatus.REJECTED and "emergency stop engaged" in (refused.reason or "")
    assert await world.sql("SELECT count(*) FROM paper_orders WHERE status = 'NEW'") == [(0,)]
    assert await world.sql("SELECT free, locked FROM paper_balances WHERE asset = 'USDT'") == [(D("1000"), D("0"))]


async def test_reconciliation_on_start_reports_the_true_state(world: World, influxdb_database: tuple[str, str]) -> None:
    open_one = make_order(quantity="0.001", limit_price="46000", reference_time=T1)
    filled_while_down = make_order(quantity="0.001", limit_price="46990", reference_time=T1)
    async with Running(world):
        await world.publish(open_one, filled_while_down)
        first = {r.client_order_id: r for r in await world.reports(2)}
    # While execution is down the (paper) exchange fills one of them.
    engine = create_engine(world.postgres_url)
    async with InfluxPriceStore(*influxdb_database) as prices:
        paper = PaperExchange(session_factory(engine), prices, PaperConfig(timeframe="15m"))
        crossing = Candle.closed(source="test", exchange="binance", symbol="BTC/USDT", timeframe="15m",
                                 open_time=T1 + timedelta(minutes=15), open=D(47000), high=D(47000), low=D(46980),
                                 close=D(46990), volume=D(1))
        assert len(await paper.on_candle(crossing)) == 1
    await engine.dispose()
    async with Running(world) as agent:
        after = {r.client_order_id: r for r in await world.reports(2)}
        assert agent.reconciled == 2
    assert after[filled_while_down.client_order_id].status is OrderStatus.FILLED
    assert after[filled_while_down.client_order_id].last_fill_price == D("46990")
    # Unchanged: its true state is reported again under the same id.
    assert after[open_one.client_order_id].status is OrderStatus.NEW
    assert after[open_one.client_order_id].message_id == first[open_one.client_order_id].message_id


async def test_refuses_an_unmigrated_database_and_unconfirmed_live_trading(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str]
) -> None:
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    unmigrated = ExecutionAgent(settings_for(rabbitmq_url, postgres_url, influxdb_database, exchange))
    await unmigrated.run(install_signal_handlers=False)
    assert unmigrated.exit_code == 2 and not unmigrated.bus.is_connected
    live = ExecutionAgent(settings_for(rabbitmq_url, postgres_url, influxdb_database, exchange, TRADING_MODE="live",
                                       EXCHANGE_API_KEY="key-123", EXCHANGE_API_SECRET="secret-456"))
    await live.run(install_signal_handlers=False)
    assert live.exit_code == 2


class FlakyPaper(PaperExchange):
    """The paper exchange with scripted failures in front of ``place`` (the exchange, not the
    agent under test, misbehaves): each entry is 'timeout-after-accept', 'timeout-before-accept'
    or 'rate-limit'."""

    script: list[str] = []

    async def place(self, order: Any) -> Any:
        step = self.script.pop(0) if self.script else "ok"
        if step == "rate-limit":
            raise RateLimited("429 Too Many Requests")
        if step == "timeout-before-accept":
            raise OrderOutcomeUnknown("RequestTimeout: no answer")
        state = await super().place(order)
        if step == "timeout-after-accept":
            raise OrderOutcomeUnknown("RequestTimeout: no answer")
        return state


class FlakyAgent(ExecutionAgent):
    async def _build_adapter(self) -> Any:
        s = self.settings
        paper = FlakyPaper(self.sessions, self.prices, PaperConfig(timeframe=s.timeframe, slippage_bps=s.paper_slippage_bps))
        await paper.seed_balances(s.paper_seed)
        return paper


@pytest.mark.parametrize(
    ("script", "statuses", "submits"),
    [
        (["timeout-after-accept"], [OrderStatus.UNKNOWN, OrderStatus.FILLED], 1),
        (["timeout-before-accept"], [OrderStatus.UNKNOWN, OrderStatus.FILLED], 2),
        (["rate-limit", "rate-limit"], [OrderStatus.FILLED], 1),
    ],
)
async def test_unknown_outcomes_are_queried_before_any_resubmission(
    world: World, script: list[str], statuses: list[OrderStatus], submits: int
) -> None:
    FlakyPaper.script = list(script)
    order = make_order(quantity="0.01", reference_time=T1)
    settings = world.settings.model_copy(update={"execution_rate_limit_backoff": 0.01})
    agent = FlakyAgent(settings, world.topology)
    task = asyncio.create_task(agent.run(install_signal_handlers=False))
    try:
        await world.publish(order)
        reports = await world.reports(len(statuses))
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)
    assert [r.status for r in reports] == statuses
    assert "outcome unknown" in (reports[0].reason or "") or statuses == [OrderStatus.FILLED]
    assert reports[-1].average_price == D("47027.61")
    assert len({r.message_id for r in reports}) == len(reports)
    assert await world.sql("SELECT submit_attempts FROM orders") == [(submits,)]
    assert await world.sql("SELECT count(*) FROM paper_orders") == [(1,)]
    assert await world.sql("SELECT count(*) FROM paper_fills") == [(1,)]

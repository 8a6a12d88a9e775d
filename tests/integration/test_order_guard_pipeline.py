"""The risk manager and execution running together on real RabbitMQ, Postgres and InfluxDB:
a forged order published on the running pipeline's exchange is not placed and the ledger and
the paper exchange still agree; a reservation whose order was lost is resolved without a person;
a lost order does not make every later decision wait the full settle time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import aio_pika
import pytest

from agents.execution import ExecutionAgent
from agents.risk_manager import RiskManagerAgent
from agents.runtime import Agent
from infra.bus import Bus, Topology, system_topology
from infra.db import create_engine, session_factory, upgrade_head
from infra.db.ledger import Ledger, ReservationStatus
from infra.influx import InfluxPriceStore
from protocol import HealthState, OrderRefusal, OrderStatus, TradingState
from tests.integration.test_execution_agent import settings_for
from tests.integration.test_risk_manager_agent import CANDLES, Harness, fill_report, signal
from tests.support.bus import cleanup, drain, make_candle, queue_depth, wait_until
from tests.support.ledger import decision_for, new_reservation, query
from tests.support.orders import make_order

pytestmark = pytest.mark.integration


@dataclass
class Pipeline:
    rabbitmq_url: str
    postgres_url: str
    influx: tuple[str, str]
    topology: Topology
    bus: Bus
    ledger: Ledger
    running: list[tuple[Agent, asyncio.Task[None]]]

    async def start_risk_manager(self, **overrides: str) -> RiskManagerAgent:
        harness = Harness(self.rabbitmq_url, self.postgres_url, self.influx, self.topology)
        agent = RiskManagerAgent(harness.settings(**overrides), self.topology)
        return await self._start(agent)  # type: ignore[return-value]

    async def start_execution(self) -> ExecutionAgent:
        settings = settings_for(self.rabbitmq_url, self.postgres_url, self.influx, self.topology.exchange,
                                PAPER_BALANCES="USDT:10000")
        return await self._start(ExecutionAgent(settings, self.topology))  # type: ignore[return-value]

    async def _start(self, agent: Agent) -> Agent:
        task = asyncio.create_task(agent.run(install_signal_handlers=False))
        self.running.append((agent, task))
        assert await wait_until(lambda: agent.health is not HealthState.STARTING or task.done(), 30)
        assert not task.done(), task.exception()
        return agent

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        return await query(self.postgres_url, statement, **params)

    async def reservation_status(self, client_order_id: str) -> ReservationStatus | None:
        view = await self.ledger.reservation(client_order_id)
        return None if view is None else view.status


@pytest.fixture
async def pipeline(rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str]) -> AsyncIterator[Pipeline]:
    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_candles([make_candle(i) for i in range(CANDLES)])
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    bus = Bus(rabbitmq_url, topology, connection_name="guard-pipeline-test")
    await bus.connect()
    engine = create_engine(postgres_url)
    p = Pipeline(rabbitmq_url, postgres_url, influxdb_database, topology, bus, Ledger(session_factory(engine)), [])
    try:
        yield p
    finally:
        for agent, task in reversed(p.running):
            agent.request_stop()
            await asyncio.wait_for(task, 30)
        await bus.close()
        await engine.dispose()
        await cleanup(rabbitmq_url, topology)


async def test_a_forged_order_on_a_running_pipeline_is_not_placed_and_the_books_agree(pipeline: Pipeline) -> None:
    risk = await pipeline.start_risk_manager()
    execution = await pipeline.start_execution()
    await pipeline.bus.publish(signal(10))
    assert await wait_until(lambda: pipeline.sql("SELECT 1 FROM reservations WHERE status = 'SETTLED'"), 20)
    [(legit_id, legit_quantity)] = await pipeline.sql("SELECT client_order_id, quantity FROM reservations")

    # A small script publishes a schema-valid order with no risk decision behind it.
    forged = make_order(quantity="0.05", reference_time=make_candle(10).open_time).model_copy(update={"strategy_id": "forged"})
    await pipeline.bus.publish(forged)

    async def refused_and_booked() -> bool:
        rows = await pipeline.sql(
            "SELECT count(*) FROM processed_messages WHERE consumer = 'risk_manager.execution_reports'")
        return rows == [(2,)]  # the legit FILLED report and the forged order's REJECTED report

    assert await wait_until(refused_and_booked, 20)
    assert await pipeline.sql("SELECT client_order_id FROM paper_orders") == [(legit_id,)]
    [(status, reason)] = await pipeline.sql("SELECT status, reason FROM orders WHERE client_order_id = :c",
                                            c=forged.client_order_id)
    assert status == "REJECTED" and reason.startswith(OrderRefusal.NO_RESERVATION.value)
    # The ledger and the paper exchange hold the same coins, asset by asset.
    ledger = {a: b.total for a, b in (await pipeline.ledger.balances()).items() if b.total}
    paper = {a: free + locked for a, free, locked in await pipeline.sql("SELECT asset, free, locked FROM paper_balances")
             if free + locked}
    assert ledger == paper and ledger["BTC"] == legit_quantity
    # The risk manager booked the refusal as a no-op: nothing dead-lettered, trading goes on.
    assert await queue_depth(pipeline.rabbitmq_url, f"{pipeline.topology.exchange}.risk_manager.execution_reports.dlq") == 0
    assert (await pipeline.ledger.risk_state()).trading_state is TradingState.ACTIVE
    assert risk.health is HealthState.HEALTHY
    assert execution.health is HealthState.DEGRADED and execution.heartbeat_detail()["refused_orders"] == "1"


async def _is(pipeline: Pipeline, client_order_id: str, status: ReservationStatus) -> bool:
    return await pipeline.reservation_status(client_order_id) is status


async def test_a_reservation_whose_order_was_lost_is_released_without_a_person(pipeline: Pipeline) -> None:
    # Execution is down; the approved order is then lost from its queue (purged, a broker's disk).
    await pipeline.start_risk_manager(RISK_ORDER_TTL="2", RISK_SWEEP_INTERVAL="0.2", RISK_RECONCILE_INTERVAL="60")
    await pipeline.bus.publish(signal(10))
    orders_queue = f"{pipeline.topology.exchange}.execution.orders"
    assert await wait_until(lambda: _depth_is(pipeline.rabbitmq_url, orders_queue, 1), 15)
    [(client_order_id,)] = await pipeline.sql("SELECT client_order_id FROM reservations")
    connection = await aio_pika.connect(pipeline.rabbitmq_url)
    async with connection:
        await (await (await connection.channel()).get_queue(orders_queue, ensure=False)).purge()
    await pipeline.start_execution()

    assert await wait_until(lambda: _is(pipeline, client_order_id, ReservationStatus.RELEASED), 30), "still held"
    usdt = (await pipeline.ledger.balances())["USDT"]
    assert (usdt.available, usdt.reserved) == (D("10000"), D(0))
    assert await pipeline.sql("SELECT status FROM orders WHERE client_order_id = :c", c=client_order_id) == [("EXPIRED",)]
    assert await pipeline.sql("SELECT count(*) FROM paper_orders") == [(0,)]


async def _depth_is(url: str, queue: str, depth: int) -> bool:
    return await queue_depth(url, queue) == depth


async def test_a_lost_order_does_not_make_later_decisions_wait_the_full_settle_time(pipeline: Pipeline) -> None:
    # A reservation approved a minute ago whose order never reached execution (no report).
    lost = replace(new_reservation(amount=D("100"), quantity=D("0.002")), created_at=datetime.now(UTC) - timedelta(minutes=1))
    assert await pipeline.ledger.ensure_initial_balances({"USDT": D("10000")})
    outcome = await pipeline.ledger.approve("risk_manager.test", lost.signal_id, lost, decision_for(lost))
    assert outcome.status == "RESERVED"
    await pipeline.start_risk_manager(RISK_SETTLE_WAIT="10")
    started = time.monotonic()
    await pipeline.bus.publish(signal(12))
    answered = await drain(pipeline.rabbitmq_url, f"{pipeline.topology.exchange}.execution.orders", 1, 15)
    elapsed = time.monotonic() - started
    assert len(answered) == 1 and elapsed < 5, f"decided after {elapsed:.1f}s"


async def test_a_report_the_ledger_cannot_book_halts_buys_visibly_instead_of_dead_lettering(pipeline: Pipeline) -> None:
    risk = await pipeline.start_risk_manager()
    # A fill of an order the ledger never reserved (what the forged order used to cause).
    stray = make_order(quantity="0.05", reference_time=make_candle(10).open_time)
    await pipeline.bus.publish(fill_report(stray, OrderStatus.FILLED, stray.quantity, D("47000"), D("2.35")))
    assert await wait_until(lambda: bool(risk.health_problems()), 15)
    assert "BUYs halted" in "; ".join(risk.health_problems()) and risk.health is HealthState.DEGRADED
    state = await pipeline.ledger.risk_state()
    assert state.trading_state is TradingState.REDUCING and stray.client_order_id in (state.trading_state_reason or "")
    assert await queue_depth(pipeline.rabbitmq_url, f"{pipeline.topology.exchange}.risk_manager.execution_reports.dlq") == 0
    # New BUYs are refused with the reason until an operator sets the state ACTIVE again.
    await pipeline.bus.publish(signal(12))

    async def rejected() -> bool:
        rows = await pipeline.sql("SELECT reason FROM risk_decisions WHERE decision = 'REJECTED'")
        return rows == [("REDUCING_ONLY",)]

    assert await wait_until(rejected, 15)

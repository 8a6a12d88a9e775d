"""Execution places only what the risk manager reserved, and one bad outbox event blocks nothing
(real RabbitMQ, Postgres and InfluxDB; the execution agent in process, paper mode)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from agents.execution import ExecutionAgent
from agents.execution.store import OrderStore
from infra.db import create_engine, session_factory
from infra.db.ledger import Ledger, ReservationStatus
from protocol import HealthState, OrderRefusal, OrderStatus
from tests.integration.test_execution_agent import T1, Running, World, world  # noqa: F401 (fixture)
from tests.support.bus import wait_until
from tests.support.orders import hold, make_order

pytestmark = pytest.mark.integration


async def test_a_forged_order_without_a_reservation_is_refused_and_never_placed(world: World) -> None:
    forged = make_order(quantity="0.05", reference_time=T1).model_copy(update={"strategy_id": "forged"})
    sentinel = make_order(quantity="0.001", reference_time=T1)  # a real one, reserved, after it
    async with Running(world) as agent:
        await world.bus.publish(forged)  # published on the exchange, no reservation behind it
        await world.publish(sentinel)
        reports = {r.client_order_id: r for r in await world.reports(2)}
        problems = agent.health_problems()
        health, detail = agent.health, agent.heartbeat_detail()
    refused = reports[forged.client_order_id]
    assert refused.status is OrderStatus.REJECTED and refused.cumulative_filled_quantity == 0
    assert (refused.reason or "").startswith(f"{OrderRefusal.NO_RESERVATION.value}: ")
    assert reports[sentinel.client_order_id].status is OrderStatus.FILLED
    assert await world.sql("SELECT client_order_id FROM paper_orders") == [(sentinel.client_order_id,)]
    events = await world.sql(
        "SELECT e.status, e.reason FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.client_order_id = :c",
        c=forged.client_order_id,
    )
    assert [(status, reason.split(":")[0]) for status, reason in events] == [("REJECTED", "NO_RESERVATION")]
    assert health is HealthState.DEGRADED and "forged" in "; ".join(problems)
    assert detail["refused_orders"] == "1"


async def test_an_order_that_differs_from_its_reservation_is_refused(world: World) -> None:
    held = make_order(quantity="0.01", reference_time=T1)
    await hold(world.postgres_url, held)
    # Same client order id and signal, five times the amount: not what the risk manager reserved.
    bigger = held.model_copy(update={"message_id": uuid.uuid4(), "quantity": D("0.05"), "reserved_amount": D("5000")})
    async with Running(world):
        await world.bus.publish(bigger)
        [report] = await world.reports(1)
    assert report.status is OrderStatus.REJECTED
    reason = report.reason or ""
    assert reason.startswith(f"{OrderRefusal.RESERVATION_MISMATCH.value}: ")
    assert "quantity 0.05 (reserved: 0.01)" in reason and "reserved_amount 5000" in reason
    assert await world.sql("SELECT count(*) FROM paper_orders") == [(0,)]


async def test_an_order_whose_reservation_was_closed_is_refused(world: World) -> None:
    order = make_order(quantity="0.01", reference_time=T1)
    await hold(world.postgres_url, order)
    engine = create_engine(world.postgres_url)
    try:
        assert await Ledger(session_factory(engine)).release(order.client_order_id, ReservationStatus.EXPIRED)
    finally:
        await engine.dispose()
    async with Running(world):
        await world.bus.publish(order)
        [report] = await world.reports(1)
    assert report.status is OrderStatus.REJECTED
    assert (report.reason or "").startswith(f"{OrderRefusal.RESERVATION_NOT_HELD.value}: ")
    assert await world.sql("SELECT count(*) FROM paper_orders") == [(0,)]


async def test_one_invalid_outbox_event_does_not_stop_the_others(world: World) -> None:
    first, second = make_order(quantity="0.01", reference_time=T1), make_order(quantity="0.02", reference_time=T1)
    await hold(world.postgres_url, first, second)
    engine = create_engine(world.postgres_url)
    try:
        # Two transitions stored but not yet published (a crash before the outbox ran) ...
        store = OrderStore(session_factory(engine), "execution")
        for order in (first, second):
            await store.claim(order, "execution.orders", order.produced_at)
            await store.record_status(order, OrderStatus.REJECTED, "test", order.produced_at)
        # ... and the older one corrupted: a REJECTED report cannot carry a filled quantity.
        async with engine.begin() as conn:
            await conn.execute(text(
                "UPDATE order_events SET cumulative_filled = 1 FROM orders o "
                "WHERE o.id = order_events.order_id AND o.client_order_id = :c"
            ), {"c": first.client_order_id})
    finally:
        await engine.dispose()
    agent = ExecutionAgent(world.settings, world.topology)
    task = asyncio.create_task(agent.run(install_signal_handlers=False))  # start-up publishes the outbox
    try:
        [report] = await world.reports(1)
        assert await wait_until(lambda: agent.health is HealthState.DEGRADED or task.done(), timeout=20)
        assert not task.done(), task.exception()
        problems = "; ".join(agent.health_problems())
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)
    assert report.client_order_id == second.client_order_id
    assert "outbox event" in problems and "cumulative_filled_quantity" in problems
    unpublished = await world.sql(
        "SELECT o.client_order_id FROM order_events e JOIN orders o ON o.id = e.order_id WHERE e.published_at IS NULL"
    )
    assert unpublished == [(first.client_order_id,)]

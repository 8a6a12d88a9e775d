"""The execution agent as an OS process on the real broker, Postgres and InfluxDB, killed right
after the (paper) exchange accepted an order and before the order message was acked: on restart
it reconciles, reports the fill, and the order exists once (placed once, filled once)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from agents.execution.agent import CRASH_EXIT
from infra.bus import Bus, system_topology
from infra.db import create_engine, upgrade_head
from infra.influx import InfluxPriceStore
from protocol import ExecutionReport, OrderRequest, OrderStatus, decode
from tests.support.bus import cleanup, drain, make_candle, queue_depth, wait_until
from tests.support.orders import hold, make_order
from tests.support.processes import spawn

pytestmark = pytest.mark.integration


async def test_killed_after_placing_before_ack_reconciles_and_the_order_exists_once(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str]
) -> None:
    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as prices:
        await prices.write_candles([make_candle(i) for i in range(3)])
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    orders_queue = f"{topology.exchange}.execution.orders"
    reports_queue = f"{topology.exchange}.risk_manager.execution_reports"
    env = {
        "RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": postgres_url, "INFLUXDB_URL": influxdb_database[0],
        "INFLUXDB_DATABASE": influxdb_database[1], "BUS_EXCHANGE": topology.exchange, "TIMEFRAME": "15m",
        "PAPER_BALANCES": "USDT:1000", "PAPER_SLIPPAGE_BPS": "5", "HEARTBEAT_INTERVAL": "0.5",
    }
    engine = create_engine(postgres_url)

    async def scalar(statement: str) -> object:
        async with engine.connect() as conn:
            return (await conn.execute(text(statement))).scalar_one()

    order = make_order(quantity="0.01", reference_time=make_candle(1).open_time)
    # Published behind the redelivered order: execution takes one order at a time in queue
    # order, so once the sentinel's report is out the redelivery has been handled in full.
    sentinel = make_order(quantity="0.001", reference_time=make_candle(1).open_time)
    try:
        await hold(postgres_url, order, sentinel)  # the risk manager's reservations, committed before the publish
        async with Bus(rabbitmq_url, topology, connection_name="crash-test") as bus:  # declares the topology
            await bus.publish(order)
            crashing = spawn("agents.execution", env={**env, "EXECUTION_TEST_CRASH_AFTER_PLACE": "1"})
            code = await asyncio.to_thread(crashing.wait, 60)
            assert code == CRASH_EXIT, (crashing.stderr.read() if crashing.stderr else "")[-3000:]
            # The exchange has the filled order; execution recorded nothing yet and reported nothing.
            assert await scalar("SELECT status FROM paper_orders") == "FILLED"
            assert await scalar("SELECT status || ' ' || submit_attempts FROM orders") == "UNKNOWN 1"
            assert await scalar("SELECT count(*) FROM order_events") == 0
            assert await queue_depth(rabbitmq_url, reports_queue) == 0
            # The unacked order is back in the queue before the sentinel goes in behind it.
            assert await wait_until(lambda: _depth_is(rabbitmq_url, orders_queue, 1), timeout=30), "order not requeued"
            await bus.publish(sentinel)

        restarted = spawn("agents.execution", env=env)
        try:
            assert await wait_until(lambda: _published(scalar, sentinel.client_order_id), timeout=30), "no sentinel report"
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(restarted.wait, 30) == 0, (restarted.stderr.read() if restarted.stderr else "")[-3000:]
        assert await queue_depth(rabbitmq_url, orders_queue) == 0  # acked, not waiting for another redelivery
        # Everything the restarted process reported is queued now that it has exited.
        queued = await queue_depth(rabbitmq_url, reports_queue)
        reports = [decode(m.body, ExecutionReport) for m in await drain(rabbitmq_url, reports_queue, expect=queued)]
        [report] = [r for r in reports if r.client_order_id == order.client_order_id]
        assert (report.status, report.cumulative_filled_quantity, report.average_price) == (OrderStatus.FILLED, D("0.01"), D("47027.61"))
        [sentinel_report] = [r for r in reports if r.client_order_id == sentinel.client_order_id]
        assert (sentinel_report.status, sentinel_report.average_price) == (OrderStatus.FILLED, D("47027.61"))
        assert len(reports) == 2
        assert await scalar(f"SELECT status || ' ' || submit_attempts FROM orders WHERE {_is(order)}") == "FILLED 1"
        assert await scalar(f"SELECT count(*) FROM paper_orders WHERE {_is(order)}") == 1
        assert await scalar(f"SELECT count(*) FROM paper_fills JOIN paper_orders p ON p.id = order_id WHERE p.{_is(order)}") == 1
        # 1000 USDT less both fills at 47027.61 and their 0.1% taker fee.
        assert await scalar("SELECT free FROM paper_balances WHERE asset = 'USDT'") == D("529.2536239") - D("47.07463761")
    finally:
        await engine.dispose()
        await cleanup(rabbitmq_url, topology)


async def _depth_is(url: str, queue: str, expected: int) -> bool:
    return await queue_depth(url, queue) == expected


def _is(order: OrderRequest) -> str:
    """SQL condition selecting one order's rows by its client order id (a test-made UUID form)."""
    return f"client_order_id = '{order.client_order_id}'"


async def _published(scalar: Callable[[str], Awaitable[object]], client_order_id: str) -> bool:
    """Whether an order has a report and every report of it has been published."""
    statement = (
        "SELECT count(*) FILTER (WHERE published_at IS NOT NULL) || '/' || count(*) FROM order_events e"
        f" JOIN orders o ON o.id = e.order_id WHERE o.client_order_id = '{client_order_id}'"
    )
    done, total = str(await scalar(statement)).split("/")
    return int(total) > 0 and done == total

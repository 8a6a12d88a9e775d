"""The execution agent in sandbox mode against the local Binance-speaking server (real ccxt,
real RabbitMQ and Postgres): an UNKNOWN send is never repeated on one "not found", a cancel of
an UNKNOWN order needs proof, credentials are checked at start, the ledger is seeded from the
exchange and compared with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest
from aiohttp import web

from agents.execution import ExecutionAgent
from infra.exchanges.account import acknowledge, drift_state
from infra.db import create_engine, session_factory
from infra.exchanges.adapter import OrderOutcomeUnknown
from protocol import CancelOrder, OrderStatus
from tests.integration.test_ccxt_adapter import order_request, trading
from tests.integration.test_execution_agent import T1, Running, World, settings_for, world  # noqa: F401 - fixture
from tests.support.fake_binance import ORDER, TEST_API_KEY, TEST_SECRET, FakeBinance
from tests.support.orders import make_order

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(balances={"USDT": "1000", "BNB": "0.5"}) as server:
        server.account.set_price("BTCUSDT", "47000")
        yield server


def sandbox(world: World, fake: FakeBinance, **extra: str) -> World:
    """``world`` with execution trading in sandbox mode on ``fake`` (short receive window)."""
    values = {
        "TRADING_MODE": "sandbox", "EXCHANGE_API_KEY": TEST_API_KEY, "EXCHANGE_API_SECRET": TEST_SECRET,
        "EXCHANGE_API_URL": fake.url, "EXECUTION_RECV_WINDOW": "3", "EXECUTION_UNKNOWN_MARGIN": "1", **extra,
    }
    influx = (world.settings.influxdb_url, world.settings.influxdb_database)
    settings = settings_for(world.rabbitmq_url, world.postgres_url, influx, world.topology.exchange, **values)
    return World(world.rabbitmq_url, world.postgres_url, world.topology, settings, world.bus)


async def test_an_unknown_send_placed_late_by_the_exchange_is_never_sent_twice(world: World, fake: FakeBinance) -> None:
    live = sandbox(world, fake)
    # The first send: -1007 at once, the order appears at the exchange 2 s later (inside
    # recvWindow 3 s). A lookup in between finds nothing; resending then would double it.
    fake.account.defer_next(1, 2.0)
    order = make_order(quantity="0.01", reference_time=T1)
    async with Running(live):
        await live.publish(order)
        reports = await live.reports(2, timeout=30)
    assert [r.status for r in reports] == [OrderStatus.UNKNOWN, OrderStatus.FILLED]
    assert len(fake.account.orders_with(order.client_order_id)) == 1
    assert sum(1 for r in fake.requests if r.path == ORDER and r.method == "POST") == 1
    assert await live.sql("SELECT submit_attempts FROM orders") == [(1,)]


async def test_a_cancel_of_an_unknown_order_is_not_canceled_without_proof(world: World, fake: FakeBinance) -> None:
    live = sandbox(world, fake, EXECUTION_UNKNOWN_MARGIN="0.5")
    # The send gets -1007 and the order appears 1.5 s later; the query right after the send
    # fails (503), so the order is still UNKNOWN when the cancel arrives, and the exchange
    # answers the cancel with "unknown order" because it has not placed it yet.
    fake.account.defer_next(1, 1.5)
    post = fake.routes[("POST", ORDER)]

    async def post_then_fail_the_next_read(request: web.Request) -> web.StreamResponse:
        response = await post(request)
        fake.fail_next(1, 503, path=ORDER, method="GET")
        return response

    fake.add_route("POST", ORDER, post_then_fail_the_next_read)
    order = make_order(quantity="0.01", reference_time=T1)
    async with Running(live):
        await live.publish(order)
        [unknown] = await live.reports(1, timeout=20)
        await live.publish(CancelOrder(source="test", client_order_id=order.client_order_id, reason="test"))
        [final] = await live.reports(1, timeout=20)
    # The order did reach the exchange and filled: never reported CANCELED.
    assert (unknown.status, final.status) == (OrderStatus.UNKNOWN, OrderStatus.FILLED)
    assert len(fake.account.orders_with(order.client_order_id)) == 1


async def test_the_ledger_is_seeded_from_the_exchange_and_a_drift_is_recorded(world: World, fake: FakeBinance) -> None:
    live = sandbox(world, fake)
    engine = create_engine(world.postgres_url)
    sessions = session_factory(engine)
    try:
        async with Running(live) as agent:
            rows = await live.sql("SELECT asset, total FROM balances ORDER BY asset")
            assert rows == [("BNB", D("0.5")), ("USDT", D("1000"))]
            assert agent.heartbeat_detail()["ledger_drift"] == "none"
            fake.account.free["USDT"] = D("900")  # money moved outside the ledger
            state = await agent.balance_duty.compare()
            assert state is not None and state.blocking and "USDT: ledger 1000, exchange 900" in (state.detail or "")
            assert any("ledger drift" in p for p in agent.health_problems())
        assert (await drift_state(sessions)).blocking
        assert not (await acknowledge(sessions, "ops")).blocking
    finally:
        await engine.dispose()


async def test_wrong_credentials_refuse_the_start_with_exit_code_2(world: World, fake: FakeBinance) -> None:
    settings = sandbox(world, fake, EXCHANGE_API_SECRET="wrong-secret-value").settings
    agent = ExecutionAgent(settings, world.topology)
    await asyncio.wait_for(agent.run(install_signal_handlers=False), 30)
    assert agent.exit_code == 2 and not agent.bus.is_connected


async def test_a_duplicate_order_answer_is_never_a_rejection() -> None:
    async with trading() as (fake, adapter):
        async def duplicate(request: web.Request) -> web.StreamResponse:
            return web.json_response({"code": -2010, "msg": "Duplicate order sent."}, status=400)

        fake.add_route("POST", ORDER, duplicate)
        with pytest.raises(OrderOutcomeUnknown, match="duplicate"):
            await adapter.place(order_request())

"""Each reality check FAILs on a system that breaks it (issue 15): the broken state is built in
real, isolated stores (a migrated Postgres database, an InfluxDB database, a bus exchange of the
test's own) and the check must report it with its figure. The same stores unbroken PASS first,
so a check that always failed would not pass these tests either."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.monitor.bus_checks import EXPECTED_AGENTS, bus_checks
from agents.monitor.report import Check, Status
from agents.monitor.store_checks import ledger_checks, price_checks
from infra.bus import headers as h
from infra.bus import system_topology
from infra.db.ledger import Ledger
from infra.influx import InfluxPriceStore
from protocol import HealthState, Heartbeat, encode, topics
from tests.support.bus import cleanup, declare, make_candle
from tests.support.ledger import migrated_ledger, new_reservation, reserve

pytestmark = pytest.mark.integration

D = Decimal
GRACE = timedelta(seconds=60)


def _one(checks: list[Check], name: str) -> Check:
    found = [c for c in checks if c.name == name]
    assert len(found) == 1, [c.name for c in checks]
    return found[0]


@dataclass
class Books:
    """A migrated ledger database of this test: the Ledger to act through, the engine to break it."""

    ledger: Ledger
    engine: AsyncEngine


@pytest.fixture
async def books(postgres_url: str) -> AsyncIterator[Books]:
    async with migrated_ledger(postgres_url, balances={"USDT": D("1000"), "BTC": D("0")}) as (ledger, engine):
        yield Books(ledger, engine)


async def _execute(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def _held(books: Books) -> str:
    reservation = new_reservation()
    await reserve(books.ledger, reservation)
    return reservation.client_order_id


async def test_a_clean_ledger_passes(books: Books) -> None:
    checks = await ledger_checks(books.engine, order_grace=GRACE)
    assert [c for c in checks if c.status is Status.FAIL] == [], checks


async def test_a_reservation_held_past_its_deadline_fails(books: Books) -> None:
    client_order_id = await _held(books)
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), "reservations past their deadline")
    assert check.status is Status.PASS  # held, but not yet due
    await _execute(books.engine, "UPDATE reservations SET expires_at = now() - interval '1 minute'")
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), "reservations past their deadline")
    assert check.status is Status.FAIL and check.figure == "1" and client_order_id in check.detail


async def test_an_approval_that_never_reached_execution_fails(books: Books) -> None:
    client_order_id = await _held(books)
    name = "approved but never reached execution"
    assert _one(await ledger_checks(books.engine, order_grace=GRACE), name).status is Status.PASS  # within grace
    await _execute(books.engine, "UPDATE reservations SET created_at = now() - interval '5 minutes'")
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), name)
    assert check.status is Status.FAIL and check.figure == "1" and client_order_id in check.detail


async def test_an_order_with_an_unknown_outcome_fails(books: Books) -> None:
    await _execute(
        books.engine,
        "INSERT INTO orders (client_order_id, request_message_id, request, strategy_id, exchange, symbol, side, "
        f"order_type, quantity, status, expires_at) VALUES ('tb-x', '{uuid.uuid4()}', '{{}}', 's', 'paper', "
        "'BTC/USDT', 'BUY', 'MARKET', 1, 'UNKNOWN', now() + interval '1 hour')",
    )
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), "outcome UNKNOWN")
    assert check.status is Status.FAIL and check.figure == "1" and "reconcile" in check.detail


async def test_a_broken_balance_invariant_fails(books: Books) -> None:
    # The schema refuses this state; an older schema or a manual fix would not: drop the guard in
    # this private database to build it, and the check must still see it.
    await _execute(
        books.engine,
        "ALTER TABLE balances DROP CONSTRAINT ck_balances_total_is_available_plus_reserved",
        "UPDATE balances SET total = total + 7 WHERE asset = 'USDT'",
    )
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), "available + reserved = total")
    assert check.status is Status.FAIL and check.figure == "1 assets" and "USDT" in check.detail


async def test_reserved_money_without_a_reservation_fails(books: Books) -> None:
    await _execute(books.engine, "UPDATE balances SET reserved = 5, available = available - 5 WHERE asset = 'USDT'")
    checks = await ledger_checks(books.engine, order_grace=GRACE)
    assert _one(checks, "available + reserved = total").status is Status.PASS
    check = _one(checks, "reserved = open reservations")
    assert check.status is Status.FAIL and check.figure == "1 assets" and "USDT" in check.detail


async def test_a_position_that_disagrees_with_its_fills_fails(books: Books) -> None:
    await _execute(
        books.engine,
        "INSERT INTO positions (strategy_id, exchange, symbol, quantity, average_entry_price, realised_pnl, fees_paid) "
        "VALUES ('s', 'paper', 'BTC/USDT', 0.5, 40000, 0, 0)",
    )
    check = _one(await ledger_checks(books.engine, order_grace=GRACE), "positions = sum of fills")
    assert check.status is Status.FAIL and check.figure == "1 differ" and "BTC/USDT" in check.detail


async def test_a_stale_price_under_the_wall_clock_fails(influxdb_database: tuple[str, str]) -> None:
    url, database = influxdb_database
    store = InfluxPriceStore(url, database, max_attempts=1)
    try:
        name = "binance BTC/USDT 15m"
        missing = await price_checks(store, "binance", ["BTC/USDT"], "15m", max_age=timedelta(minutes=45))
        assert _one(missing, name).status is Status.FAIL and _one(missing, name).figure == "no candle"
        candle = make_candle(0)  # a 15-minute candle of 2021
        await store.write_candles([candle])
        replay = await price_checks(store, "binance", ["BTC/USDT"], "15m", max_age=None)
        assert _one(replay, name).status is Status.PASS  # a replay is not judged by the wall clock
        check = _one(await price_checks(store, "binance", ["BTC/USDT"], "15m", max_age=timedelta(minutes=45)), name)
        assert check.status is Status.FAIL and f"latest {candle.open_time:%Y-%m-%d %H:%M}Z" in check.figure
        assert "age" in check.figure and "older than 0:45:00" in check.detail
        now = datetime.now(UTC).timestamp()
        close = datetime.fromtimestamp(now - now % 900, UTC)  # the latest closed 15-minute candle
        fresh = candle.model_copy(update={"open_time": close - timedelta(minutes=15), "close_time": close})
        await store.write_candles([fresh])
        check = _one(await price_checks(store, "binance", ["BTC/USDT"], "15m", max_age=timedelta(minutes=45)), name)
        assert check.status is Status.PASS, check
    finally:
        await store.close()


def _beat(agent: str, age: timedelta, health: HealthState = HealthState.HEALTHY) -> Heartbeat:
    now = datetime.now(UTC)
    return Heartbeat(source=agent, agent=agent, instance_id="i-1", started_at=now - timedelta(hours=1),
                     uptime_seconds=3600.0, health=health, consumed=1, published=1, dead_lettered=0, errors=0,
                     detail={}, produced_at=now - age)


async def test_a_silent_agent_and_a_dead_letter_fail(rabbitmq_url: str) -> None:
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    await declare(rabbitmq_url, topology)
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange)
        dead = topology.queues[0].dead_letter_queue
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}", headers={h.ERROR: "ValueError: boom in the handler"}), routing_key=dead
        )
        check = asyncio.create_task(
            bus_checks(rabbitmq_url, topology, heartbeat_wait=3, heartbeat_max_age=10, max_depth=100)
        )
        # The check listens on a queue of its own while it runs: the agents speak meanwhile.
        # Four are current; execution's last word is a minute old.
        while not check.done():
            for agent in EXPECTED_AGENTS:
                age = timedelta(minutes=1) if agent == "execution" else timedelta(0)
                await exchange.publish(aio_pika.Message(encode(_beat(agent, age))), routing_key=topics.heartbeat(agent))
            await asyncio.wait({check}, timeout=0.3)
        checks = check.result()
    finally:
        await connection.close()
        await cleanup(rabbitmq_url, topology)
    silent = _one(checks, "execution heartbeat")
    assert silent.status is Status.FAIL and silent.figure.startswith("6") and "older than 10s" in silent.detail
    assert _one(checks, "strategy heartbeat").status is Status.PASS
    letter = _one(checks, dead)
    assert letter.status is Status.FAIL and letter.figure == "1" and "boom in the handler" in letter.detail
    nobody = _one(checks, topology.queues[0].name)
    assert nobody.status is Status.FAIL and "consumer" in nobody.detail  # no agent consumes it

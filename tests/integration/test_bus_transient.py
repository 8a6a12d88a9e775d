"""Transient versus permanent failures on the real broker (issue 14): a store outage is waited
out in place (order kept, agent DEGRADED, no dead letter), a bug is still dead-lettered after the
bounded attempts, a shutdown or a lost channel interrupts the wait without acking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from agents.runtime.base import Agent
from infra.bus import Bus, Delivery, QueueSpec, RetryPolicy, Topology
from infra.bus import headers as h
from infra.db import create_engine
from infra.settings import Settings
from protocol import Candle, EmergencyStop, HealthState, Message, topics
from tests.support.bus import cleanup, declare, drain, isolated_topology, make_candle, queue_depth, wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

FAST = RetryPolicy(backoff_initial=0.05, backoff_cap=0.2)
MAX_ATTEMPTS = 3


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    base = isolated_topology()
    topo = base.with_queues(QueueSpec(f"{base.exchange}.control", (topics.emergency_stop(),), "test"))
    await declare(rabbitmq_url, topo)
    yield topo
    await cleanup(rabbitmq_url, topo)


def work_queue(topology: Topology) -> str:
    return topology.queues[0].name


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}").geturl()


async def publish(rabbitmq_url: str, topology: Topology, *messages: Message) -> None:
    async with Bus(rabbitmq_url, topology, connection_name="test-publisher") as bus:
        for message in messages:
            await bus.publish(message)


def fast_bus(rabbitmq_url: str, topology: Topology) -> Bus:
    return Bus(rabbitmq_url, topology, connection_name="test-transient", max_attempts=MAX_ATTEMPTS, retry_policy=FAST)


class RecordingAgent(Agent):
    """An agent whose one handler books each candle into Postgres (through a switchable proxy)."""

    name = "transient_test"

    def __init__(self, settings: Settings, topology: Topology, database_url: str) -> None:
        super().__init__(settings, topology)
        self.database_url = database_url
        self.booked: list[int] = []
        self.tries: dict[int, int] = {}

    async def setup(self) -> None:
        self.engine = create_engine(self.database_url)
        await self.bus.consume(work_queue(self.bus.topology), self.book, (Candle,))

    async def teardown(self) -> None:
        await self.engine.dispose()

    async def book(self, message: Message, delivery: Delivery) -> None:
        """Insert the candle's index; fails while Postgres is unreachable."""
        assert isinstance(message, Candle)
        index = int(message.open - 47000)
        self.tries[index] = self.tries.get(index, 0) + 1
        async with self.engine.begin() as connection:
            await connection.execute(text("INSERT INTO booked (idx) VALUES (:idx)"), {"idx": index})
        self.booked.append(index)


async def test_a_postgres_outage_is_retried_past_max_attempts_in_order_degraded_then_acked(
    rabbitmq_url: str, postgres_url: str, topology: Topology
) -> None:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE booked (seq serial PRIMARY KEY, idx int NOT NULL)"))
    settings = Settings(
        RABBITMQ_URL=rabbitmq_url,
        BUS_MAX_ATTEMPTS=MAX_ATTEMPTS,
        BUS_RETRY_BACKOFF_INITIAL=0.05,
        BUS_RETRY_BACKOFF_CAP=0.2,
        HEARTBEAT_INTERVAL=0.2,
    )
    host = urlsplit(postgres_url)
    async with TcpProxy(host.hostname or "127.0.0.1", host.port or 5432) as proxy:
        proxy.set_up(False)  # Postgres "down" before the first message arrives
        agent = RecordingAgent(settings, topology, through(proxy, postgres_url))
        running = asyncio.create_task(agent.run(install_signal_handlers=False))
        try:
            await publish(rabbitmq_url, topology, *[make_candle(i) for i in range(4)])
            # Far more tries than BUS_MAX_ATTEMPTS, and still nothing dead-lettered.
            assert await wait_until(lambda: agent.tries.get(0, 0) > 2 * MAX_ATTEMPTS, timeout=20), agent.tries
            assert agent.health is HealthState.DEGRADED
            problems = agent.heartbeat().detail["problems"]
            assert f"retrying {work_queue(topology)}: Postgres " in problems, problems
            assert set(agent.tries) == {0}  # the messages behind it wait: order is kept
            assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0

            proxy.set_up(True)
            assert await wait_until(lambda: len(agent.booked) == 4, timeout=20), agent.booked
            assert await wait_until(lambda: agent.health is HealthState.HEALTHY, timeout=5)
            assert "problems" not in agent.heartbeat().detail
        finally:
            agent.request_stop()
            await asyncio.wait_for(running, 30)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT idx FROM booked ORDER BY seq"))).scalars().all()
    await engine.dispose()
    assert rows == [0, 1, 2, 3]
    assert agent.bus.stats.dead_lettered == 0
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0


async def test_a_permanent_error_after_transient_ones_is_dead_lettered_after_the_bounded_attempts(
    rabbitmq_url: str, topology: Topology
) -> None:
    attempts: list[int] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) <= 4:
            raise TimeoutError("store did not answer")  # transient: does not count
        raise ValueError("no such strategy")  # permanent: counts toward BUS_MAX_ATTEMPTS

    async with fast_bus(rabbitmq_url, topology) as bus:
        await bus.consume(work_queue(topology), handler, (Candle,))
        await bus.publish(make_candle(1))
        dead = await drain(rabbitmq_url, topology.queues[0].dead_letter_queue, expect=1, timeout=15)
    assert attempts == [1, 2, 3, 4, 5, 6, 7]
    assert len(dead) == 1
    assert dead[0].headers[h.ERROR] == "ValueError: no such strategy"
    assert dead[0].headers[h.FAILURES] == MAX_ATTEMPTS
    assert dead[0].headers[h.ATTEMPT] == 7


@pytest.mark.parametrize("sequential", [True, False])
async def test_an_emergency_stop_is_never_dead_lettered_for_a_transient_error(
    rabbitmq_url: str, topology: Topology, sequential: bool
) -> None:
    applied: list[int] = []
    tries: list[Delivery] = []

    async def apply_stop(message: Message, delivery: Delivery) -> None:
        tries.append(delivery)
        if len(tries) <= 3 * MAX_ATTEMPTS:
            raise ConnectionResetError(104, "Connection reset by peer")
        applied.append(delivery.attempt)

    stop = EmergencyStop(source="test", active=True, reason="chaos", requested_by="test")
    async with fast_bus(rabbitmq_url, topology) as bus:
        await bus.consume(topology.queues[2].name, apply_stop, (EmergencyStop,), sequential=sequential)
        await bus.publish(stop)
        assert await wait_until(lambda: applied, timeout=20)
    assert applied == [3 * MAX_ATTEMPTS + 1]
    # Retried in place, also by a concurrent consumer: never re-published to the back.
    assert all(h.ROUTING_KEY not in d.headers and h.FAILURES not in d.headers for d in tries)
    assert await queue_depth(rabbitmq_url, topology.queues[2].dead_letter_queue) == 0
    assert await queue_depth(rabbitmq_url, topology.queues[2].name) == 0


async def test_shutdown_interrupts_a_transient_retry_without_acking(rabbitmq_url: str, topology: Topology) -> None:
    tries: list[int] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        tries.append(delivery.attempt)
        raise ConnectionRefusedError(111, "Connect call failed")

    slow = RetryPolicy(backoff_initial=5.0, backoff_cap=30.0)  # the wait that shutdown must cut
    bus = Bus(rabbitmq_url, topology, connection_name="test-stop", max_attempts=MAX_ATTEMPTS, retry_policy=slow)
    await bus.connect()
    await bus.consume(work_queue(topology), handler, (Candle,))
    await bus.publish(make_candle(2))
    assert await wait_until(lambda: tries == [1])
    started = asyncio.get_running_loop().time()
    await bus.close()
    assert asyncio.get_running_loop().time() - started < 3
    assert tries == [1]
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 1  # back in the queue, unacked
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0


async def test_a_broker_connection_lost_during_a_retry_is_survived_and_the_message_redelivered(
    rabbitmq_url: str, topology: Topology
) -> None:
    outage = True
    handled: list[tuple[int, bool]] = []  # (candle index, redelivered) of successful calls

    async def handler(message: Message, delivery: Delivery) -> None:
        if outage:
            raise ConnectionRefusedError(111, "Connect call failed")
        handled.append((int(message.open - 47000), delivery.redelivered))  # type: ignore[attr-defined]

    broker = urlsplit(rabbitmq_url)
    async with TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as proxy:
        bus = Bus(
            through(proxy, rabbitmq_url), topology, connection_name="test-lost", max_attempts=MAX_ATTEMPTS,
            retry_policy=FAST, reconnect_interval=0.3, publish_timeout=5,
        )
        await bus.connect()
        try:
            await bus.consume(work_queue(topology), handler, (Candle,))
            await publish(rabbitmq_url, topology, make_candle(5))
            assert await wait_until(lambda: bus.consumers[0].problem() is not None)
            proxy.set_up(False)  # the consumer's channel dies under the retrying delivery
            await asyncio.sleep(1.0)
            proxy.set_up(True)
            outage = False
            assert await wait_until(lambda: handled, timeout=20)
            await publish(rabbitmq_url, topology, make_candle(6))  # and the consumer goes on
            assert await wait_until(lambda: [i for i, _ in handled] == [5, 6], timeout=20), handled
        finally:
            await bus.close()
    assert handled[0] == (5, True)  # the broker redelivered it: nothing was acked on the dead channel
    assert await queue_depth(rabbitmq_url, work_queue(topology)) == 0
    assert await queue_depth(rabbitmq_url, topology.queues[0].dead_letter_queue) == 0

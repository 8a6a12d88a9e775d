"""The alert notifier on the real bus, sending to a real local HTTP server that records what it
receives (standing in for webhooks and for Telegram's Bot API on different paths).

Real protocol messages are published on a real RabbitMQ exchange; a message is dead-lettered by
a real bus consumer. The assertions are on the requests the server recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from agents.notifier import NotifierAgent
from agents.notifier.settings import NotifierSettings
from infra.bus import Bus, system_topology
from infra.bus.topology import dead_letter_queue_name
from protocol import EmergencyStop, HealthState, Message, OrderStatus, TradingState, topics
from tests.support.alert_messages import beat, metrics, report
from tests.support.alert_server import AlertServer
from tests.support.bus import cleanup, queue_depth

pytestmark = pytest.mark.integration

TOKEN = "123456:AAH-test-token-never-logged"
CHAT = "-1001234"
TELEGRAM = f"/bot{TOKEN}/sendMessage"


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer(fail_first={"/flaky": 2}, hang={"/dead-target-secret"}).running() as running:
        yield running


@pytest.fixture
async def exchange(rabbitmq_url: str) -> AsyncIterator[str]:
    name = f"tbnotify_{uuid.uuid4().hex[:10]}"
    yield name
    await cleanup(rabbitmq_url, system_topology(name))


def settings_for(rabbitmq_url: str, exchange: str, tmp_path: Path, **extra: str) -> NotifierSettings:
    values = {
        "RABBITMQ_URL": rabbitmq_url, "BUS_EXCHANGE": exchange, "BUS_CRASH_JOURNAL_DIR": str(tmp_path),
        "HEARTBEAT_INTERVAL": "0.5", "NOTIFIER_RETRY_BACKOFF": "0.05", "NOTIFIER_RETRY_BACKOFF_CAP": "0.2",
        "NOTIFIER_RATE_PER_MINUTE": "6000", **extra,
    }
    return NotifierSettings(**values)  # type: ignore[arg-type]


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[NotifierAgent]:
    """A NotifierAgent running in this event loop from setup done until the block ends."""
    agent = NotifierAgent(settings)
    task = asyncio.create_task(agent.run(install_signal_handlers=False))
    await wait_until(lambda: agent.health is HealthState.HEALTHY or task.done(), "the notifier to finish setup")
    assert not task.done(), "the notifier stopped during setup"
    try:
        yield agent
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)


async def publish(bus: Bus, *messages: Message) -> None:
    for message in messages:
        await bus.publish(message)


def kinds(bodies: list[Any]) -> list[str]:
    return sorted(body["kind"] for body in bodies)


async def test_alerts_reach_webhooks_and_telegram_once_each(
    rabbitmq_url: str, exchange: str, server: AlertServer, tmp_path: Path
) -> None:
    settings = settings_for(
        rabbitmq_url, exchange, tmp_path,
        NOTIFIER_WEBHOOK_URLS=f"{server.url}/hook,{server.url}/flaky",
        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_CHAT_ID=CHAT, TELEGRAM_API_URL=server.url,
    )
    topology = system_topology(exchange)
    dlq = dead_letter_queue_name(f"{exchange}.risk_manager.control")
    async with running_notifier(settings):
        async with Bus(rabbitmq_url, topology, connection_name="test-notifier-publisher") as bus:
            # A real consumer of the risk manager's control queue dead-letters what it cannot read.
            await bus.consume(f"{exchange}.risk_manager.control", _ignore, (EmergencyStop,))
            fill = report(OrderStatus.FILLED, "0.05", "0.05", trade_id="t-1")
            await publish(
                bus,
                fill,
                fill,  # a redelivery: the same trade
                report(OrderStatus.FILLED, "0.05", "0.05", trade_id="t-1"),  # re-published: new id, same trade
                report(OrderStatus.NEW),  # nothing to tell
                EmergencyStop(source="operator", active=True, reason="exchange outage", requested_by="ops"),
                beat("execution", HealthState.HEALTHY),
                beat("execution", HealthState.DEGRADED, problems="1 refused order(s)"),
                beat("execution", HealthState.DEGRADED, problems="1 refused order(s)"),
                beat("execution", HealthState.HEALTHY, ledger_drift="USDT: ledger 1000, exchange 990"),
                metrics("0.1"),  # calm
                metrics("0.25", TradingState.REDUCING),  # past the 0.2 pause, and BUYs halted
            )
            await bus.publisher.publish(
                aio_pika.Message(b'{"schema": "control.emergency_stop/1", "active": "maybe"}'),
                routing_key=topics.emergency_stop(),
            )
            expected = 8  # fill, stop, degraded, recovered, drift, drawdown, trading state, dead letter
            for path in ("/hook", TELEGRAM, "/flaky"):
                await server.wait_for(lambda: len(server.delivered(path)) >= expected, f"{expected} alerts on {path}")

            # Execution fell silent after its last beat: down after 3 intervals of 0.5 s.
            await server.wait_for(lambda: "agent_down" in kinds(server.delivered("/hook")), "the agent_down alert")
            assert await queue_depth(rabbitmq_url, dlq) == 1, "the notifier must not consume the DLQ"

    hook = server.delivered("/hook")
    assert kinds(hook) == ["agent_degraded", "agent_down", "agent_recovered", "dead_letter", "drawdown_pause",
                           "emergency_stop", "fill", "ledger_drift", "trading_state"]
    by_kind = {body["kind"]: body for body in hook}
    assert by_kind["fill"]["title"] == "BUY 0.05 BTC/USDT @ 50000 (FILLED, strategy trend)"
    assert by_kind["fill"]["key"] == "fill:tb-0123456789abcdef:t-1"
    assert by_kind["agent_degraded"]["fields"] == {"agent": "execution", "problems": "1 refused order(s)"}
    assert by_kind["dead_letter"]["fields"]["queue"] == f"{exchange}.risk_manager.control"
    assert by_kind["dead_letter"]["fields"]["error_kind"] == "validation"
    assert by_kind["emergency_stop"]["fields"]["reason"] == "exchange outage"
    assert by_kind["agent_down"]["fields"]["agent"] == "execution"
    assert by_kind["ledger_drift"]["fields"]["drift"] == "USDT: ledger 1000, exchange 990"
    assert by_kind["drawdown_pause"]["fields"]["drawdown"] == "0.25"
    assert by_kind["trading_state"]["title"] == "trading state ACTIVE -> REDUCING"

    telegram = server.delivered(TELEGRAM)
    assert len(telegram) == len(hook)
    assert {body["chat_id"] for body in telegram} == {CHAT}
    assert sum("BUY 0.05 BTC/USDT @ 50000" in body["text"] for body in telegram) == 1
    # The flaky target failed twice, then got every alert exactly once.
    assert kinds(server.delivered("/flaky")) == kinds(hook)
    assert server.attempts("/flaky") == len(hook) + 2


async def _ignore(message: Message, delivery: object) -> None:
    """The test's control consumer: it only has to exist (and dead-letter the unreadable)."""


async def test_a_dead_target_holds_back_neither_other_targets_nor_the_agents_queues(
    rabbitmq_url: str, exchange: str, server: AlertServer, tmp_path: Path
) -> None:
    settings = settings_for(
        rabbitmq_url, exchange, tmp_path,
        NOTIFIER_WEBHOOK_URLS=f"{server.url}/dead-target-secret,{server.url}/hook",
        NOTIFIER_TIMEOUT="1", NOTIFIER_RETRY_ATTEMPTS="2", NOTIFIER_QUEUE_SIZE="2",
    )
    fills = [report(OrderStatus.FILLED, "0.05", "0.05", trade_id=f"t-{n}", client_order_id=f"tb-{n:016x}")
             for n in range(8)]
    reports_queue = f"{exchange}.risk_manager.execution_reports"
    async with running_notifier(settings) as agent:
        async with Bus(rabbitmq_url, system_topology(exchange), connection_name="test-notifier-publisher") as bus:
            # One at a time, each after the previous reached the live target: that target keeps up,
            # the dead one (each alert holds it for two 1 s timeouts) overflows its queue of 2.
            for count, fill in enumerate(fills, 1):
                await publish(bus, fill)
                await server.wait_for(lambda: len(server.delivered("/hook")) == count, f"fill {count} on the live target")
            dead = agent.workers[0]
            await wait_until(lambda: dead.stats.failed >= 1, "the dead target to be given up once")
            # The agents' own queue holds exactly what was published: the notifier has its own copies.
            assert await queue_depth(rabbitmq_url, reports_queue) == len(fills)
            assert dead.queued <= 2 and dead.stats.dropped > 0
            assert agent.health is HealthState.DEGRADED
            problems = "; ".join(agent.health_problems())
            assert "webhook1 http://127.0.0.1" in problems and "dead-target-secret" not in problems
    assert sorted(body["key"] for body in server.delivered("/hook")) == sorted(
        f"fill:tb-{n:016x}:t-{n}" for n in range(8))

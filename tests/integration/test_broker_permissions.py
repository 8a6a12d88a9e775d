"""The provisioning script on the machine's real RabbitMQ: the broker itself refuses a forged
order from the strategy's user, confirms the risk manager's, and every agent role can still do
its real work (declare the whole topology, publish its own keys, consume, dead-letter).

Runs where ``rabbitmqctl`` reaches the broker of RABBITMQ_URL (as root on the machine, or
RABBITMQCTL="docker exec <container> rabbitmqctl"). Everything lives in a fresh vhost with
uniquely named users, all removed afterwards; existing users (guest) are never touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import subprocess
import uuid
from datetime import UTC, datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq
import pytest

from infra.bus import Bus, Delivery, system_topology
from infra.bus import headers as h
from infra.bus.permissions import AGENT_ROLES, ROLES
from protocol import topics
from protocol import ExecutionReport, Heartbeat, HealthState, Message, OrderRequest, OrderStatus, decode
from tests.support.bus import drain, wait_until
from tests.support.orders import make_order
from tests.support.services import unavailable

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "rabbitmq" / "provision-users.sh"
EXCHANGE = "tradebus"


def _ctl() -> list[str]:
    return shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl"))


def _run_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_ctl(), *args], capture_output=True, text=True, timeout=60, check=False)


@dataclass
class Broker:
    """A fresh vhost with one provisioned user per role."""

    base_url: str
    vhost: str
    prefix: str
    passwords: dict[str, str]

    def url(self, role: str) -> str:
        parts = urlsplit(self.base_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(self.prefix + role, safe='')}:{quote(self.passwords[role], safe='')}@{host}:{parts.port or 5672}"
        return urlunsplit(parts._replace(netloc=netloc, path="/" + quote(self.vhost, safe="")))


@pytest.fixture(scope="module")
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    try:
        reachable = _run_ctl("-s", "list_vhosts", "name").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        reachable = False
    if not reachable:
        unavailable("rabbitmqctl cannot reach the broker (set RABBITMQCTL)")
    tag = uuid.uuid4().hex[:10]
    broker = Broker(rabbitmq_url, f"tbperm_{tag}", f"tbperm_{tag}-", {r: secrets.token_hex(16) for r in ROLES})  # hex: a leading '-' reads as a rabbitmqctl option
    env = {
        **os.environ,
        "RABBITMQ_VHOST": broker.vhost,
        "BUS_EXCHANGE": EXCHANGE,
        "TRADEBUS_USER_PREFIX": broker.prefix,
        "RABBITMQCTL": shlex.join(_ctl()),
        **{f"RABBITMQ_PASSWORD_{role.upper()}": password for role, password in broker.passwords.items()},
    }
    try:
        done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert not any(p in done.stdout + done.stderr for p in broker.passwords.values()), "a password was printed"
        # Idempotent: a second run over an existing user (its password rotated) succeeds as well.
        broker.passwords["monitor"] = secrets.token_hex(16)
        rotate = {k: v for k, v in env.items() if not k.startswith("RABBITMQ_PASSWORD_")}
        rotate |= {"RABBITMQ_PASSWORD_MONITOR": broker.passwords["monitor"], "TRADEBUS_REQUIRED_ROLES": "monitor"}
        again = subprocess.run(["sh", str(SCRIPT)], env=rotate, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stderr
        yield broker
    finally:
        for role in ROLES:
            _run_ctl("-q", "delete_user", broker.prefix + role)
        _run_ctl("-q", "delete_vhost", broker.vhost)


async def _publish_raw(url: str, message: Message, routing_key: str) -> None:
    """One confirmed publish on a plain (non-robust) connection, as a small forging script would."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        body = message.model_dump_json(by_alias=True).encode()
        await asyncio.wait_for(exchange.publish(aio_pika.Message(body), routing_key=routing_key, mandatory=True), 10)


async def _ready(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def test_the_broker_refuses_a_forged_order_from_the_strategy_user(broker: Broker) -> None:
    topology = system_topology(EXCHANGE)
    async with Bus(broker.url("strategy"), topology, connection_name="perm-strategy"):
        pass  # the strategy's user declares the whole topology, as every agent does at start
    forged = make_order(quantity="0.05").model_copy(update={"strategy_id": "forged"})
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as refused:
        await _publish_raw(broker.url("strategy"), forged, "trade.order.BTC-USDT")
    assert "ACCESS_REFUSED" in str(refused.value)
    # The same key from the API's and the MCP server's users: refused too.
    for role in ("api", "mcp", "execution", "monitor"):
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await _publish_raw(broker.url(role), forged, "trade.order.BTC-USDT")
    # Through the default exchange straight into execution's queue: refused as well.
    connection = await aio_pika.connect(broker.url("strategy"), timeout=10)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=f"{EXCHANGE}.execution.orders")
    legit = make_order(quantity="0.01")
    await _publish_raw(broker.url("risk_manager"), legit, "trade.order.BTC-USDT")  # confirmed
    assert await _ready(broker.url("monitor"), f"{EXCHANGE}.execution.orders") == 1


async def test_every_agent_role_can_do_its_real_work(broker: Broker) -> None:
    topology = system_topology(EXCHANGE)
    for role in AGENT_ROLES:
        async with Bus(broker.url(role.name), topology, connection_name=f"perm-{role.name}") as bus:
            await bus.publish(Heartbeat(
                source=role.name, agent=role.name, instance_id="perm-test", started_at=datetime.now(UTC),
                uptime_seconds=1, health=HealthState.HEALTHY, consumed=0, published=0, dead_lettered=0, errors=0,
            ))
    assert await _ready(broker.url("monitor"), f"{EXCHANGE}.monitor.heartbeats") == len(AGENT_ROLES)
    # The reality check listens on a private server-named queue bound to the heartbeats.
    connection = await aio_pika.connect(broker.url("monitor"), timeout=10)
    async with connection:
        channel = await connection.channel()
        private = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await private.bind(await channel.get_exchange(EXCHANGE, ensure=False), routing_key=topics.ALL_HEARTBEATS)
        assert private.name.startswith("amq.gen-")

    # Execution consumes its order queue and dead-letters what it cannot read, through the DLX.
    order, refused = make_order(quantity="0.01"), make_order(quantity="0.02")
    async with Bus(broker.url("risk_manager"), topology, connection_name="perm-rm") as rm:
        await rm.publish(refused)  # valid, but we make the handler refuse it
        await rm.publish(order)
    seen: list[OrderRequest] = []

    async def handler(message: Message, delivery: Delivery) -> None:
        assert isinstance(message, OrderRequest)
        if message.client_order_id == refused.client_order_id:
            raise ValueError("refused for the test")
        seen.append(message)

    async with Bus(broker.url("execution"), topology, connection_name="perm-exec", max_attempts=1) as bus:
        await bus.consume(f"{EXCHANGE}.execution.orders", handler, (OrderRequest,))
        assert await wait_until(lambda: order.client_order_id in {m.client_order_id for m in seen}, timeout=10)
        dlq = f"{EXCHANGE}.execution.orders.dlq"
        assert await wait_until(lambda: _ready(broker.url("monitor"), dlq), timeout=15)
    connection = await aio_pika.connect(broker.url("monitor"), timeout=10)
    async with connection:
        dead = await (await connection.channel()).get_queue(f"{EXCHANGE}.execution.orders.dlq", ensure=False)
        message = await dead.get(timeout=5)
        assert decode(message.body, OrderRequest).client_order_id == refused.client_order_id
        assert "refused for the test" in str((message.headers or {}).get(h.ERROR, ""))


async def test_the_real_execution_agent_runs_as_its_own_user(
    broker: Broker, postgres_url: str, influxdb_database: tuple[str, str]
) -> None:
    from agents.execution import ExecutionAgent
    from infra.db import upgrade_head
    from infra.influx import InfluxPriceStore
    from tests.integration.test_execution_agent import Running, World, settings_for
    from tests.support.bus import drain, make_candle
    from tests.support.orders import hold

    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as prices:
        await prices.write_candles([make_candle(i) for i in range(3)])
    topology = system_topology(EXCHANGE)
    settings = settings_for(broker.url("execution"), postgres_url, influxdb_database, EXCHANGE)
    order = make_order(quantity="0.01", reference_time=make_candle(1).open_time)
    await hold(postgres_url, order)
    async with Bus(broker.url("risk_manager"), topology, connection_name="perm-rm2") as rm:
        world = World(broker.url("monitor"), postgres_url, topology, settings, rm)
        async with Running(world) as agent:
            assert isinstance(agent, ExecutionAgent)
            await rm.publish(order)
            reports = await drain(broker.url("monitor"), f"{EXCHANGE}.risk_manager.execution_reports", 1, 20)
    assert [decode(m.body, ExecutionReport).status for m in reports] == [OrderStatus.FILLED]


@pytest.mark.parametrize("connect", [aio_pika.connect_robust, aio_pika.connect], ids=["robust", "plain"])
async def test_the_monitor_listens_for_heartbeats_on_a_private_queue(broker: Broker, connect: object) -> None:
    # The reality check (`docker compose run reality-check`, user tradebus-monitor) declares an
    # unnamed queue: aio-pika's robust channel names it amq_<hex>, the server amq.gen-...
    from agents.monitor.bus_checks import collect_heartbeats

    topology = system_topology(EXCHANGE)
    async with Bus(broker.url("execution"), topology, connection_name="perm-private") as bus:
        connection = await connect(broker.url("monitor"), timeout=10)  # type: ignore[operator]
        async with connection:
            listening = asyncio.create_task(collect_heartbeats(connection, EXCHANGE, 10, ["execution"]))
            await asyncio.sleep(1)  # the private queue is bound before the beat is sent
            await bus.publish(Heartbeat(
                source="execution", agent="execution", instance_id="perm-private", started_at=datetime.now(UTC),
                uptime_seconds=1, health=HealthState.HEALTHY, consumed=0, published=0, dead_lettered=0, errors=0,
            ))
            heard = await asyncio.wait_for(listening, 15)
    assert heard["execution"].instance_id == "perm-private"


async def test_the_real_mcp_server_runs_as_its_own_user_and_may_only_propose(
    broker: Broker, postgres_url: str, influxdb_database: tuple[str, str], tmp_path: Path
) -> None:
    # The MCP server's user publishes its own strategy's signals and controls; a signal under a
    # strategy's id (or any order) is refused by the broker, whatever a tool would try.
    from agents.mcp.service import McpService
    from agents.mcp.settings import McpSettings
    from infra.db import upgrade_head
    from infra.influx import InfluxPriceStore
    from protocol import EmergencyStop, Signal
    from tests.support.bus import make_candle

    candle = make_candle(0)
    signal = Signal(
        source="mcp", strategy_id="rsi", strategy="mcp", exchange="binance", symbol="BTC/USDT", timeframe="15m",
        side="BUY", confidence=0.9, reason="forged", indicators={}, candle_time=candle.open_time, price=candle.close,
    )
    async with Bus(broker.url("mcp"), system_topology(EXCHANGE), connection_name="perm-mcp"):
        pass  # the MCP server's user declares the whole topology, as every process does at start
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await _publish_raw(broker.url("mcp"), signal, topics.signal("rsi", "BTC/USDT"))
    await _publish_raw(broker.url("mcp"), signal.model_copy(update={"strategy_id": "mcp-x"}), topics.signal("mcp-x", "BTC/USDT"))

    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as prices:
        await prices.write_candles([candle])
    settings = McpSettings(
        RABBITMQ_URL=broker.url("mcp"), DATABASE_URL=postgres_url, INFLUXDB_URL=influxdb_database[0],  # type: ignore[call-arg]
        INFLUXDB_DATABASE=influxdb_database[1], BUS_EXCHANGE=EXCHANGE, MCP_CLIENT="perm", HEARTBEAT_INTERVAL=1,
        BUS_CRASH_JOURNAL_DIR=tmp_path,
    )
    service = McpService(settings)
    running = asyncio.create_task(service.run(install_signal_handlers=False))
    try:
        assert await wait_until(lambda: service.health is not HealthState.STARTING or running.done(), 30)
        assert not running.done(), "the MCP service could not start as tradebus-mcp"
        signals = f"{EXCHANGE}.risk_manager.signals"
        before = await _ready(broker.url("monitor"), signals)
        # No risk manager here: the proposal is confirmed by the broker and waits, PENDING.
        answer = await service.propose(symbol="BTC/USDT", side="BUY", confidence=0.9, reason="perm test",
                                       timeframe=None, wait=0.5)
        assert answer["outcome"] == "PENDING" and answer["signal"]["strategy_id"] == "mcp-perm"
        await service.request_emergency_stop("perm test")
        assert await _ready(broker.url("monitor"), signals) == before + 1
        assert await wait_until(lambda: _ready(broker.url("monitor"), f"{EXCHANGE}.risk_manager.control"), 10)
        # It hears heartbeats on its private queue (the monitor queue's are left to the run panel).
        async with Bus(broker.url("execution"), system_topology(EXCHANGE), connection_name="perm-beat") as bus:
            await bus.publish(Heartbeat(
                source="execution", agent="execution", instance_id="perm-mcp", started_at=datetime.now(UTC),
                uptime_seconds=1, health=HealthState.HEALTHY, consumed=0, published=0, dead_lettered=0, errors=0,
            ))
        assert await wait_until(lambda: service.agents_health()["agents"]["execution"].get("instance_id") == "perm-mcp", 10)
        assert service.health is HealthState.HEALTHY, service.heartbeat().detail
        stop = decode((await _take(broker.url("monitor"), f"{EXCHANGE}.risk_manager.control")), EmergencyStop)
        assert (stop.active, stop.requested_by) == (True, "mcp-perm")
    finally:
        service.request_stop()
        await asyncio.wait_for(running, 30)


async def _take(url: str, queue: str) -> bytes:
    (message,) = await drain(url, queue, expect=1, timeout=5)
    return message.body

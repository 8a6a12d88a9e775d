"""The MCP server on a running system: real RabbitMQ, a migrated Postgres ledger, InfluxDB with
candles, and the risk manager as its own OS process (tests/support/system.py). The assistant's
side is the SDK's in-process client connected to the server object (and, for the tokens, the
real `tradebus mcp --transport http` process).

A proposal must be decided exactly as the same Signal from a strategy would be: every case
publishes the proposal through the tool, then its twin — the identical signal under another
strategy id, from another connection — and compares the two audited decisions. The twin comes
second, so it sees the proposal's reservation too; RISK_MAX_TRADE_NOTIONAL caps both BUYs at
the same notional, so their sizes must agree to the lot.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared._httpx_utils import create_mcp_http_client

from agents.mcp.server import build_server
from agents.mcp.service import McpService
from agents.mcp.settings import McpSettings
from agents.runtime.supervisor import child_preexec, stop_processes
from infra.bus import Bus, system_topology
from infra.db import create_engine, session_factory, upgrade_head
from infra.db.ledger import DecisionKind, DecisionView, Ledger
from infra.influx import InfluxPriceStore
from protocol import HealthState, RejectionReason, Signal
from tests.support.bus import cleanup, make_candle, wait_until
from tests.support.processes import ROOT
from tests.support.system import SystemRun

pytestmark = pytest.mark.integration

CANDLES = 120
READ_TOKEN, OPERATOR_TOKEN = "read-" + uuid.uuid4().hex, "operate-" + uuid.uuid4().hex


def _env(rabbitmq_url: str, postgres_url: str, influx: tuple[str, str], exchange: str, journal: Path) -> dict[str, str]:
    return {
        "RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": postgres_url, "INFLUXDB_URL": influx[0],
        "INFLUXDB_DATABASE": influx[1], "BUS_EXCHANGE": exchange, "EXCHANGE": "binance", "SYMBOLS": "BTC/USDT",
        "TIMEFRAME": "15m", "PAPER_BALANCES": "USDT:10000", "RISK_CLOCK": "signal", "RISK_SETTLE_WAIT": "0",
        "RISK_METRICS_INTERVAL": "3600", "RISK_SWEEP_INTERVAL": "3600", "RISK_MIN_CONFIDENCE": "0.5",
        # Both BUYs of a comparison are capped at the same notional, so their sizes must agree.
        "RISK_MAX_TRADE_NOTIONAL": "100", "HEARTBEAT_INTERVAL": "1", "BUS_CRASH_JOURNAL_DIR": str(journal),
        "MCP_CLIENT": "test", "API_READ_TOKEN": READ_TOKEN, "API_OPERATOR_TOKEN": OPERATOR_TOKEN,
    }


@dataclass
class World:
    env: dict[str, str]
    service: McpService
    server: MCPServer
    strategy_bus: Bus
    ledger: Ledger
    risk: SystemRun

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """One tool call through the SDK's in-process client (a session per call: the fixture's
        setup and teardown run in different tasks, and a session must not span them)."""
        async with Client(self.server) as client:
            return await client.call_tool(tool, arguments)


async def _consumers(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)


@pytest.fixture
async def world(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], tmp_path: Path
) -> AsyncIterator[World]:
    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_candles([make_candle(i) for i in range(CANDLES)])
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    topology = system_topology(exchange)
    env = _env(rabbitmq_url, postgres_url, influxdb_database, exchange, tmp_path)
    risk = SystemRun(rabbitmq_url=rabbitmq_url, database_url=postgres_url, influx=influxdb_database,
                     exchange=exchange, env=env, logs=tmp_path)
    service = McpService(McpSettings(**env))  # type: ignore[arg-type]
    running = asyncio.create_task(service.run(install_signal_handlers=False))
    engine = create_engine(postgres_url)
    strategy_bus = Bus(rabbitmq_url, topology, connection_name="strategy-twin")
    try:
        assert await wait_until(lambda: service.health is not HealthState.STARTING or running.done(), 30), "mcp service start"
        assert not running.done(), "the MCP service stopped at start"
        risk.start("risk_manager")
        await risk.wait(lambda: _consumers(rabbitmq_url, f"{exchange}.risk_manager.signals"), timeout=120,
                        what="the risk manager process consuming signals")
        await strategy_bus.connect()
        yield World(env, service, build_server(service), strategy_bus, Ledger(session_factory(engine)), risk)
    finally:
        await strategy_bus.close()
        service.request_stop()
        await asyncio.wait_for(running, 30)
        await risk.stop_all()
        await engine.dispose()
        await cleanup(rabbitmq_url, topology)


def data(result: Any) -> Any:
    assert not result.is_error, result.content[0].text
    content = result.structured_content
    return content["result"] if isinstance(content, dict) and set(content) == {"result"} else content


async def propose(world: World, **arguments: Any) -> dict[str, Any]:
    answer = data(await world.call("propose_signal", {"symbol": "BTC/USDT", "reason": "test", **arguments}))
    assert isinstance(answer, dict)
    return answer


async def decided(ledger: Ledger, signal_id: UUID) -> DecisionView:
    found: list[DecisionView] = []

    async def check() -> bool:
        decision = await ledger.decision(signal_id)
        if decision is not None:
            found.append(decision)
        return decision is not None

    assert await wait_until(check, 30), f"no decision on {signal_id}"
    return found[0]


async def twin_of(world: World, proposal: dict[str, Any], strategy_id: str) -> DecisionView:
    """Publish the proposal's signal as strategy ``strategy_id`` would, and its decision."""
    sent = proposal["signal"]
    twin = Signal(
        source="strategy", strategy_id=strategy_id, strategy="sma_cross", exchange=sent["exchange"],
        symbol=sent["symbol"], timeframe=sent["timeframe"], side=sent["side"], confidence=sent["confidence"],
        reason=sent["reason"], indicators={}, candle_time=sent["candle_time"], price=sent["price"],
    )
    await world.strategy_bus.publish(twin)
    return await decided(world.ledger, twin.message_id)


def essentials(decision: DecisionView) -> tuple[Any, ...]:
    order = decision.output if decision.decision is DecisionKind.APPROVED else None
    terms = None if order is None else tuple(order[k] for k in ("side", "quantity", "reference_price", "reserved_asset", "reserved_amount"))
    return decision.decision, decision.reason, decision.detail.replace(decision.strategy_id, "<strategy>"), terms


async def test_a_proposal_is_decided_exactly_as_the_same_signal_from_a_strategy(world: World) -> None:
    cases = [
        {"side": "BUY", "confidence": 0.8},  # approved and sized
        {"side": "BUY", "confidence": 0.2},  # below RISK_MIN_CONFIDENCE
        {"side": "SELL", "confidence": 0.9},  # nothing held by either strategy
    ]
    outcomes = []
    for number, case in enumerate(cases):
        proposal = await propose(world, **case)
        mine = await decided(world.ledger, UUID(proposal["signal"]["signal_id"]))
        assert mine.strategy_id == "mcp-test" and proposal["signal"]["strategy_id"] == "mcp-test"
        assert proposal["outcome"] == mine.decision.value and proposal["reason"] == (mine.reason and mine.reason.value)
        assert proposal["detail"] == mine.detail
        twin = await twin_of(world, proposal, f"twin-{number}")
        assert essentials(mine) == essentials(twin)
        outcomes.append((mine.decision, mine.reason))
    assert outcomes == [
        (DecisionKind.APPROVED, None),
        (DecisionKind.REJECTED, RejectionReason.LOW_CONFIDENCE),
        (DecisionKind.REJECTED, RejectionReason.NO_POSITION),
    ]


async def test_an_approved_proposal_returns_its_order_and_the_order_is_the_risk_managers(world: World) -> None:
    proposal = await propose(world, side="BUY", confidence=0.9)
    assert proposal["outcome"] == "APPROVED", proposal
    order = proposal["order"]
    reservation = await world.ledger.reservation(order["client_order_id"])
    assert reservation is not None and reservation.strategy_id == "mcp-test"
    assert str(reservation.quantity) == order["quantity"] and str(reservation.amount) == order["reserved_amount"]
    # Sized by the risk manager: capped at RISK_MAX_TRADE_NOTIONAL (100 USDT) at the candle's close.
    assert float(order["quantity"]) * float(proposal["signal"]["price"]) <= 100
    # The same candle again: the risk manager's duplicate rule applies to mcp-* like to any strategy.
    again = await propose(world, side="BUY", confidence=0.9)
    assert (again["outcome"], again["reason"]) == ("REJECTED", "DUPLICATE_SIGNAL"), again
    listed = data(await world.call("risk_decisions", {"strategy_id": "mcp-test"}))
    assert [d["decision"] for d in listed] == ["REJECTED", "APPROVED"]
    assert listed[1]["order"]["client_order_id"] == order["client_order_id"]


async def test_a_proposal_that_breaks_a_limit_comes_back_rejected_with_its_reason(world: World) -> None:
    low = await propose(world, side="BUY", confidence=0.3)
    assert (low["outcome"], low["reason"]) == ("REJECTED", "LOW_CONFIDENCE")
    assert "0.3" in low["detail"] and "0.5" in low["detail"], low["detail"]
    assert "order" not in low or low["order"] is None
    # The stop requested through the MCP server is applied by the risk manager from the bus.
    stop = data(await world.call("request_emergency_stop", {"reason": "assistant saw a flash crash"}))
    assert stop["requested"] is True

    async def stopped() -> bool:
        return (await world.ledger.risk_state()).emergency_stop

    assert await wait_until(stopped, 30), "the risk manager never applied the stop"
    state = await world.ledger.risk_state()
    assert (state.emergency_reason, state.changed_by) == ("assistant saw a flash crash", "mcp-test")
    blocked = await propose(world, side="BUY", confidence=0.9)
    assert (blocked["outcome"], blocked["reason"]) == ("REJECTED", "EMERGENCY_STOP")
    assert "assistant saw a flash crash" in blocked["detail"]


async def test_the_read_tools_answer_from_the_stores_and_the_heartbeats(world: World) -> None:
    price = data(await world.call("get_price", {"candles": 3}))
    last = make_candle(CANDLES - 1)
    assert price["price"] == str(last.close) and len(price["candles"]) == 3
    account = data(await world.call("get_account", {}))
    assert account["balances"]["USDT"]["total"] == "10000"
    assert account["risk_state"]["emergency_stop"] is False
    assert data(await world.call("list_open_orders", {})) == []
    assert data(await world.call("recent_fills", {})) == []

    async def risk_manager_heard() -> bool:
        health = data(await world.call("agents_health", {}))
        return health["agents"]["risk_manager"]["health"] == "HEALTHY"

    assert await wait_until(risk_manager_heard, 20), "no risk manager heartbeat through agents_health"
    health = data(await world.call("agents_health", {}))
    assert health["agents"]["execution"]["health"] == "NO_HEARTBEAT"  # not started in this test
    backtest = data(await world.call("run_backtest", {"strategy": "sma_cross", "params": {"fast": 3, "slow": 8, "window": 60}, "candles": 40}))
    assert backtest["config"]["window"]["candles"] == 40 and "sharpe" in backtest["metrics"]
    # The live risk path by default (decision 0024): the live sizing fraction; the strategy alone on request.
    assert backtest["risk"]["sizing"] == {"mode": "fraction", "fraction": "0.1"}, backtest["risk"]
    alone = data(await world.call("run_backtest", {"strategy": "sma_cross", "params": {"fast": 3, "slow": 8, "window": 60},
                                                   "candles": 40, "risk_limits": False}))
    assert alone["risk"]["limits"].startswith("none") and alone["risk"]["sizing"]["fraction"] == "1"
    too_big = await world.call("run_backtest", {"strategy": "sma_cross", "candles": 100_000})
    assert too_big.is_error and "at most 5000" in too_big.content[0].text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_client(url: str, token: str) -> Client:
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})))


async def test_http_refuses_a_missing_token_and_a_read_token_for_the_acting_tools(world: World) -> None:
    port = _free_port()
    env = {**os.environ, **world.env, "MCP_PORT": str(port), "MCP_CLIENT": "http", "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "agents.cli", "mcp", "--transport", "http"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=child_preexec())
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async def listening() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.post(url, json={})).status_code == 401
            except httpx.TransportError:
                return False

        assert await wait_until(listening, 90, interval=0.3), "tradebus mcp --transport http never answered"
        async with httpx.AsyncClient(timeout=5) as http:
            bare = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            wrong = await http.post(url, json={}, headers={"Authorization": "Bearer not-a-token"})
        assert (bare.status_code, wrong.status_code) == (401, 401)

        async with _http_client(url, READ_TOKEN) as reader:
            assert len((await reader.list_tools()).tools) == 10
            assert data(await reader.call_tool("get_account", {}))["balances"]["USDT"]["total"] == "10000"
            refused = await reader.call_tool("propose_signal", {"symbol": "BTC/USDT", "side": "BUY", "confidence": 0.9, "reason": "x"})
            assert refused.is_error and "needs the operator token" in refused.content[0].text
            stop = await reader.call_tool("request_emergency_stop", {"reason": "x"})
            assert stop.is_error
        assert await world.ledger.recent_order_times(make_candle(0).open_time, strategy_id="mcp-http") == []
        async with _http_client(url, OPERATOR_TOKEN) as operator:
            accepted = data(await operator.call_tool("propose_signal", {"symbol": "BTC/USDT", "side": "BUY", "confidence": 0.9, "reason": "x"}))
        assert accepted["outcome"] == "APPROVED" and accepted["signal"]["strategy_id"] == "mcp-http"
        # The read token's refused proposal never reached the risk manager: only the operator's did.
        decisions = data(await world.call("risk_decisions", {"strategy_id": "mcp-http"}))
        assert [d["signal_id"] for d in decisions] == [accepted["signal"]["signal_id"]]
    finally:
        stop_processes([process])


def test_http_refuses_to_start_outside_development_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("API_READ_TOKEN", "API_OPERATOR_TOKEN")}
    env |= {"TRADEBUS_ENV": "test", "API_OPERATOR_TOKEN": OPERATOR_TOKEN}
    done = subprocess.run([sys.executable, "-m", "agents.cli", "mcp", "--transport", "http"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "set API_READ_TOKEN" in done.stderr
    assert OPERATOR_TOKEN not in done.stderr + done.stdout




async def test_stdio_serves_the_tools_and_read_only_refuses_the_acting_ones(world: World) -> None:
    # The assistant's client starts `tradebus mcp` itself, as Claude Desktop does (README).
    from mcp import StdioServerParameters

    env = {**os.environ, **world.env, "MCP_CLIENT": "stdio"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "agents.cli", "mcp", "--read-only"],
                                   env=env, cwd=str(ROOT))
    async with Client(params, read_timeout_seconds=60) as client:
        assert len((await client.list_tools()).tools) == 10
        price = data(await client.call_tool("get_price", {}))
        assert price["price"] == str(make_candle(CANDLES - 1).close)
        refused = await client.call_tool("request_emergency_stop", {"reason": "x"})
        assert refused.is_error and "needs the operator token" in refused.content[0].text
    assert not (await world.ledger.risk_state()).emergency_stop

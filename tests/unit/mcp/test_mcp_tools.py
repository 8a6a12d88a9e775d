"""The MCP server's tool surface through the SDK's in-process client: every tool is listed with
its input schema, the read tools say they only read, and no tool can place, size or cancel an
order — the only acting tools are the proposal and the stop request. No service is needed: the
list comes from the server object itself, as an assistant's client sees it."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from agents.mcp.server import ACTING_TOOLS, build_server
from agents.mcp.service import McpService
from agents.mcp.settings import McpSettings
from infra.tokens import Role

READ_TOOLS = {
    "get_price", "get_indicators", "get_account", "list_open_orders", "recent_fills", "risk_decisions",
    "agents_health", "run_backtest",
}


async def _tools(default_role: Role | None = Role.OPERATOR) -> dict[str, Any]:
    server = build_server(McpService(McpSettings()), default_role=default_role)
    async with Client(server) as client:
        listed = await client.list_tools()
    return {tool.name: tool for tool in listed.tools}


async def test_every_tool_is_listed_with_its_input_schema() -> None:
    tools = await _tools()
    assert set(tools) == READ_TOOLS | set(ACTING_TOOLS)
    propose = tools["propose_signal"].input_schema
    assert set(propose["required"]) == {"symbol", "side", "confidence", "reason"}
    side = propose["properties"]["side"]
    assert side.get("enum") == ["BUY", "SELL"], side  # HOLD proposes nothing; no other verb exists
    confidence = propose["properties"]["confidence"]
    assert (confidence["minimum"], confidence["maximum"]) == (0, 1)
    assert propose["properties"]["reason"]["maxLength"] == 500
    assert tools["request_emergency_stop"].input_schema["required"] == ["reason"]
    backtest = tools["run_backtest"].input_schema
    assert backtest["required"] == ["strategy"] and "candles" in backtest["properties"]
    assert tools["risk_decisions"].input_schema["properties"]["decision"]["anyOf"][0]["enum"] == ["APPROVED", "REJECTED", "IGNORED"]


async def test_no_tool_places_sizes_or_cancels_an_order() -> None:
    tools = await _tools()
    for name, tool in tools.items():
        words = set(name.split("_"))
        assert not words & {"place", "cancel", "order", "size", "execute", "buy", "sell", "release"}, name
        if name in READ_TOOLS:
            assert tool.annotations is not None and tool.annotations.read_only_hint is True, name
        else:
            assert name in ACTING_TOOLS and tool.annotations.read_only_hint is False
    # The proposal's own arguments cannot carry a quantity, a price or an order type either.
    assert not set(tools["propose_signal"].input_schema["properties"]) & {"quantity", "amount", "price", "order_type", "limit_price"}


@pytest.mark.parametrize("tool, arguments", [
    ("propose_signal", {"symbol": "BTC/USDT", "side": "BUY", "confidence": 0.9, "reason": "test"}),
    ("request_emergency_stop", {"reason": "test"}),
])
async def test_a_read_only_caller_is_refused_the_acting_tools_before_anything_is_sent(tool: str, arguments: dict[str, Any]) -> None:
    # The service is not even connected: a refusal that reached the bus would fail differently.
    server = build_server(McpService(McpSettings()), default_role=Role.READ)
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert "needs the operator token" in result.content[0].text


@pytest.mark.parametrize("role", [Role.READ, Role.OPERATOR])
async def test_the_backtest_tool_never_loads_a_strategy_file_of_the_callers_choosing(tmp_path: Any, role: Role) -> None:
    # A file that leaves a mark when it is imported: the mark is the proof that code ran.
    mark = tmp_path / "ran"
    source = tmp_path / "evil.py"
    source.write_text(f"from pathlib import Path\nPath({str(mark)!r}).write_text('x')\nclass Evil: ...\n")
    server = build_server(McpService(McpSettings()), default_role=role)
    async with Client(server) as client:
        result = await client.call_tool("run_backtest", {"strategy": f"{source}:Evil"})
        by_module = await client.call_tool("run_backtest", {"strategy": "evil:Evil"})
    assert result.is_error and by_module.is_error
    assert "not loaded over MCP" in result.content[0].text, result.content[0].text
    assert "not loaded over MCP" in by_module.content[0].text
    assert not mark.exists(), "the caller's file was executed by the MCP server"

"""The MCP server object: read tools, and two acting tools that can only propose.

No tool places, sizes or cancels an order. ``propose_signal`` publishes a Signal of the
server's own strategy id (``mcp-<client>``) that the risk manager decides like any other and
returns that decision; ``request_emergency_stop`` asks for the stop. Over HTTP every request
carries a bearer token (``agents/mcp/http.py``): the read token may call the read tools only,
the operator token also the acting ones. Over stdio (the assistant's client starts
``tradebus mcp`` itself, as the operator would run the CLI) the role is the one the command
was started with.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from uuid import UUID

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from agents.mcp.backtests import BacktestRefused, refuse_code_reference
from agents.mcp.service import McpService, ProposalRefused
from infra.tokens import Role

__all__ = ["ACTING_TOOLS", "OPERATE_SCOPE", "READ_SCOPE", "build_server"]

READ_SCOPE = "tradebus:read"
OPERATE_SCOPE = "tradebus:operate"
ACTING_TOOLS = ("propose_signal", "request_emergency_stop")

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
_ACT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)

Symbol = Annotated[str | None, Field(description="market symbol BASE/QUOTE, e.g. BTC/USDT (default: the first of SYMBOLS)")]
Timeframe = Annotated[str | None, Field(description="candle length, e.g. 15m (default: TIMEFRAME)")]
Limit = Annotated[int, Field(ge=1, le=5000, description="most rows returned (also capped by MCP_MAX_ROWS)")]

INSTRUCTIONS = (
    "tradebus: a crypto trading system. Read tools show prices, indicators, the account, orders, fills, "
    "risk decisions with their reasons, agents' health, and backtests on stored candles. You cannot place, "
    "size or cancel orders: propose_signal sends a signal of your own strategy id that the risk manager "
    "approves (and sizes) or rejects with a reason, exactly like a strategy's; request_emergency_stop asks "
    "for the emergency stop (only a person releases it)."
)


def _role(default_role: Role | None) -> Role | None:
    """The caller's role: from the HTTP bearer token when there is one, else the server's default."""
    token = get_access_token()
    if token is None:
        return default_role
    return Role.OPERATOR if OPERATE_SCOPE in token.scopes else Role.READ


def _require_operator(default_role: Role | None, tool: str) -> None:
    if _role(default_role) is not Role.OPERATOR:
        raise ToolError(f"{tool} needs the operator token (API_OPERATOR_TOKEN); this caller may only read")


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ToolError(f"{name} must be a decimal number, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise ToolError(f"{name} must be > 0")
    return value


def build_server(
    service: McpService,
    *,
    default_role: Role | None = Role.OPERATOR,
    auth: tuple[AuthSettings, TokenVerifier] | None = None,
) -> MCPServer:
    """The tools over a running ``service``. ``default_role``: the role of a caller without a
    bearer token (stdio, in-process); None refuses acting tools to such a caller. ``auth``: the
    HTTP transport's bearer-token settings and verifier (``agents.mcp.http.http_auth``)."""
    server = MCPServer("tradebus", instructions=INSTRUCTIONS, version="0.1.0",
                       auth=auth[0] if auth else None, token_verifier=auth[1] if auth else None)

    @server.tool(annotations=_READ)
    async def get_price(symbol: Symbol = None, timeframe: Timeframe = None,
                        candles: Annotated[int, Field(ge=1, le=5000, description="recent candles returned")] = 1) -> dict[str, Any]:
        """The latest stored close (the price the risk manager uses) and the most recent candles."""
        return await service.price(symbol, timeframe, candles)

    @server.tool(annotations=_READ)
    async def get_indicators(symbol: Symbol = None, timeframe: Timeframe = None) -> dict[str, Any]:
        """The newest indicator snapshot (RSI, MACD, Bollinger, ATR, SMAs/EMAs, ...) of a series."""
        return await service.indicators(symbol, timeframe)

    @server.tool(annotations=_READ)
    async def get_account(strategy_id: Annotated[str | None, Field(description="only this strategy's positions")] = None) -> dict[str, Any]:
        """Balances (total, available, reserved per asset), positions per strategy and symbol, and the
        risk state (trading state, emergency stop)."""
        return await service.account(strategy_id)

    @server.tool(annotations=_READ)
    async def list_open_orders(symbol: Symbol = None) -> list[dict[str, Any]]:
        """Orders execution holds that are not final yet (NEW, PARTIALLY_FILLED, UNKNOWN), newest first."""
        return await service.open_orders(symbol)

    @server.tool(annotations=_READ)
    async def recent_fills(symbol: Symbol = None,
                           strategy_id: Annotated[str | None, Field(description="only this strategy's fills")] = None,
                           limit: Limit = 50) -> list[dict[str, Any]]:
        """Trades booked in the ledger (quantity, price, fee), newest first."""
        return await service.fills(symbol, strategy_id, limit)

    @server.tool(annotations=_READ)
    async def risk_decisions(
        strategy_id: Annotated[str | None, Field(description="only this strategy's decisions")] = None,
        decision: Annotated[Literal["APPROVED", "REJECTED", "IGNORED"] | None, Field(description="only this outcome")] = None,
        signal_id: Annotated[UUID | None, Field(description="the decision on one signal")] = None,
        limit: Limit = 50,
    ) -> list[dict[str, Any]]:
        """The risk manager's decisions, newest first: outcome, reason code and detail, and the order it sized."""
        return await service.decisions(strategy_id, decision, signal_id, limit)

    @server.tool(annotations=_READ)
    async def agents_health() -> dict[str, Any]:
        """Each agent's newest heartbeat heard since this server started: health, age, problems, counters."""
        return service.agents_health()

    @server.tool(annotations=_READ)
    async def run_backtest(
        strategy: Annotated[str, Field(description="a strategy kind (sma_cross, rsi, macd_cross, bollinger_reversion, combined) or a configured instance id")],
        symbol: Symbol = None,
        timeframe: Timeframe = None,
        candles: Annotated[int, Field(ge=2, le=100_000, description="the last N stored candles (without start/end); capped by MCP_BACKTEST_MAX_CANDLES")] = 500,
        start: Annotated[datetime | None, Field(description="first traded candle's open time (ISO 8601 with offset); with end")] = None,
        end: Annotated[datetime | None, Field(description="stop before this open time; with start")] = None,
        params: Annotated[dict[str, Any] | None, Field(description="overrides, e.g. {\"fast\": 10, \"slow\": 30} or indicator periods")] = None,
        fraction: Annotated[str | None, Field(description="share of the quote balance one BUY uses (default: RISK_SIZING_FRACTION; all-in without risk limits)")] = None,
        cash: Annotated[str, Field(description="starting quote balance")] = "10000",
        risk_limits: Annotated[bool, Field(description="decide every signal by the live risk manager's limits and sizing (false: the strategy alone)")] = True,
    ) -> dict[str, Any]:
        """Backtest a strategy on the candles stored in InfluxDB with the live strategy, risk rules (limits and
        sizing, unless risk_limits is false), and paper-fill code (a signal at a close fills at the next open).
        Metrics, recent trades and signals, and the rejections by reason."""
        try:
            refuse_code_reference(strategy)  # before anything is loaded or read
            return await service.backtest(strategy=strategy, symbol=symbol, timeframe=timeframe, candles=candles,
                                          start=start, end=end, params=params or {},
                                          fraction=None if fraction is None else _decimal(fraction, "fraction"),
                                          cash=_decimal(cash, "cash"), risk_limits=risk_limits)
        except BacktestRefused as exc:
            raise ToolError(f"backtest refused: {exc}") from None

    @server.tool(annotations=_ACT)
    async def propose_signal(
        symbol: Annotated[str, Field(description="market symbol BASE/QUOTE, e.g. BTC/USDT")],
        side: Annotated[Literal["BUY", "SELL"], Field(description="BUY opens or adds (long only); SELL closes what this server's strategy holds")],
        confidence: Annotated[float, Field(ge=0, le=1, description="0 to 1; below RISK_MIN_CONFIDENCE it is rejected")],
        reason: Annotated[str, Field(min_length=1, max_length=500, description="why, for the audit trail")],
        timeframe: Timeframe = None,
        wait_seconds: Annotated[float | None, Field(gt=0, le=600, description="how long to wait for the decision (default and cap: MCP_DECISION_TIMEOUT)")] = None,
    ) -> dict[str, Any]:
        """Propose a trade. Publishes a signal of this server's own strategy id (mcp-<client>) on the newest
        stored candle; the risk manager decides it exactly like any strategy's signal (it sizes the order, or
        rejects it with a reason). Returns the decision: APPROVED with the order's size and client order id,
        REJECTED with the reason code and detail, or PENDING if not decided in time. It never places an order."""
        _require_operator(default_role, "propose_signal")
        try:
            return await service.propose(symbol=symbol, side=side, confidence=confidence, reason=reason,
                                         timeframe=timeframe, wait=wait_seconds)
        except ProposalRefused as exc:
            raise ToolError(f"not proposed: {exc}") from None

    @server.tool(annotations=_ACT)
    async def request_emergency_stop(
        reason: Annotated[str, Field(min_length=1, max_length=500, description="why, for the audit trail")],
    ) -> dict[str, Any]:
        """Ask for the emergency stop: the risk manager then approves nothing and execution places nothing
        and cancels open orders. Only a person releases it (`tradebus emergency-stop off`)."""
        _require_operator(default_role, "request_emergency_stop")
        return await service.request_emergency_stop(reason)

    return server

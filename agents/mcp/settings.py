"""Settings of the MCP server (`tradebus mcp`): its HTTP bind, its own strategy id, its bounds."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.settings import Settings

__all__ = ["McpSettings"]

_CLIENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")


class McpSettings(Settings):
    """Settings shared by all agents plus the MCP server's own (MCP_*)."""

    mcp_host: str = Field(default="127.0.0.1", alias="MCP_HOST", description="bind address of the HTTP transport")
    mcp_port: int = Field(default=8765, ge=0, le=65535, alias="MCP_PORT", description="port of the HTTP transport")
    mcp_client: str = Field(
        default="assistant", alias="MCP_CLIENT",
        description="proposals are signals of strategy id mcp-<MCP_CLIENT> (lowercase letters, digits, '-', '_')",
    )
    mcp_decision_timeout: float = Field(
        default=60.0, gt=0, le=600, alias="MCP_DECISION_TIMEOUT",
        description="seconds propose_signal waits for the risk manager's decision before answering 'pending'",
    )
    mcp_max_rows: int = Field(default=200, ge=1, le=5000, alias="MCP_MAX_ROWS", description="most rows a read tool returns")
    mcp_backtest_max_candles: int = Field(
        default=5000, ge=10, le=100_000, alias="MCP_BACKTEST_MAX_CANDLES",
        description="most traded candles one backtest tool call may run over",
    )

    @field_validator("mcp_client")
    @classmethod
    def _check_client(cls, value: str) -> str:
        value = value.strip().lower()
        if not _CLIENT.fullmatch(value):
            raise ValueError("MCP_CLIENT must be 1-41 of a-z, 0-9, '-', '_' (it becomes the strategy id mcp-<client>)")
        return value

    @property
    def strategy_id(self) -> str:
        """The strategy id every proposal of this server carries (broker role mcp: strategy.signal.mcp-*)."""
        return f"mcp-{self.mcp_client}"

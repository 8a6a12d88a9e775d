"""Settings of the console API (on top of the shared ones and the strategy config path).

API_HOST, API_PORT, the tokens and API_CORS_ORIGINS are shared settings (infra/settings.py, the
MCP server uses the same tokens); only the stream's buffer is the API's own.
"""

from __future__ import annotations

from pydantic import Field

from agents.strategy.settings import StrategySettings

__all__ = ["ApiSettings"]


class ApiSettings(StrategySettings):
    """API_STREAM_BUFFER plus everything in ``Settings`` (STRATEGY_CONFIG: the strategies shown)."""

    api_stream_buffer: int = Field(
        default=5000, ge=1, le=1_000_000, alias="API_STREAM_BUFFER",
        description="live events kept in memory for clients resuming the stream (Last-Event-ID)",
    )

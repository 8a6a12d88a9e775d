"""Settings of the strategy agent (on top of the shared ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from infra.settings import Settings

__all__ = ["StrategySettings"]


class StrategySettings(Settings):
    """STRATEGY_CONFIG and STRATEGY_HISTORY_LENGTH, plus everything in ``Settings``.

    Single strategy parameters are overridden with STRATEGY__<ID>__<FIELD> variables, read by
    ``agents.strategy.config`` (not fields here: their names depend on the configured ids).
    """

    strategy_config: Path | None = Field(
        default=None,
        alias="STRATEGY_CONFIG",
        description="TOML or YAML file of strategy instances; unset: the shipped agents/strategy/strategies.toml",
    )
    strategy_decide_timeout: float = Field(
        default=5.0, gt=0, le=3600, alias="STRATEGY_DECIDE_TIMEOUT",
        description="seconds a user strategy's decide() may take on one candle before its instance is broken",
    )
    strategy_history_length: int = Field(
        default=5000,
        ge=10,
        le=1_000_000,
        alias="STRATEGY_HISTORY_LENGTH",
        description="indicator rows kept per (exchange, symbol, timeframe), warmed from InfluxDB",
    )

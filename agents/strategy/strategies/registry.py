"""Strategy kinds by name, and building one from a kind and a parameter mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from agents.strategy.strategies.base import Strategy, StrategyConfigError
from agents.strategy.strategies.bollinger import BollingerReversionStrategy
from agents.strategy.strategies.combined import CombinedStrategy
from agents.strategy.strategies.macd import MacdCrossStrategy
from agents.strategy.strategies.rsi import RsiStrategy
from agents.strategy.strategies.sma import SmaCrossStrategy

__all__ = ["STRATEGY_KINDS", "build_strategy"]

STRATEGY_KINDS: Final[dict[str, type[Strategy]]] = {
    cls.kind: cls
    for cls in (RsiStrategy, MacdCrossStrategy, BollingerReversionStrategy, SmaCrossStrategy, CombinedStrategy)
}


def build_strategy(kind: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """A strategy of ``kind`` with validated ``params``; StrategyConfigError names the problem."""
    if not isinstance(kind, str) or kind.strip().lower() not in STRATEGY_KINDS:
        raise StrategyConfigError(f"unknown strategy kind {kind!r}; known kinds: {', '.join(STRATEGY_KINDS)}")
    if params is not None and not isinstance(params, Mapping):
        raise StrategyConfigError(f"parameters of strategy kind {kind!r} must be a table/mapping, got {type(params).__name__}")
    return STRATEGY_KINDS[kind.strip().lower()](params or {})

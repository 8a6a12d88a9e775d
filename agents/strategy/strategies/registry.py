"""Strategy kinds by name, and building a strategy from a kind or a reference (decision 0021).

``build_strategy`` is the one way in for the strategy agent, the backtester and the CLI: a
built-in kind name (``rsi``) or a user strategy ``path/to/file.py:ClassName`` /
``package.module:ClassName`` (``agents.strategy.loader``). A relative file path is taken from
``base_dir`` — the folder of the config file naming it — and, inside a strategy being built
(a combined strategy's members), from the folder its parent was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final

from agents.strategy.api import Strategy, StrategyConfigError, check_indicator_columns
from agents.strategy.loader import build_from_reference, is_reference
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

# The folder relative references are resolved from while a strategy (and its members) is built.
_BASE_DIR: ContextVar[Path | None] = ContextVar("strategy_base_dir", default=None)


def build_strategy(kind: str, params: Mapping[str, Any] | None = None, *, base_dir: Path | None = None) -> Strategy:
    """A strategy of ``kind`` (a built-in name or a reference) with validated ``params``;
    StrategyConfigError (StrategyLoadError for a user file) names the problem."""
    if params is not None and not isinstance(params, Mapping):
        raise StrategyConfigError(f"parameters of strategy kind {kind!r} must be a table/mapping, got {type(params).__name__}")
    if not isinstance(kind, str):
        raise StrategyConfigError(f"strategy kind must be text, got {kind!r}")
    token = _BASE_DIR.set(base_dir) if base_dir is not None else None
    try:
        if is_reference(kind):
            return build_from_reference(kind, params, _BASE_DIR.get())
        name = kind.strip().lower()
        if name not in STRATEGY_KINDS:
            raise StrategyConfigError(
                f"unknown strategy kind {kind!r}; known kinds: {', '.join(STRATEGY_KINDS)}, "
                "or path/to/file.py:ClassName / package.module:ClassName for your own"
            )
        strategy = STRATEGY_KINDS[name](params or {})
        # The same check a user strategy gets (loader): a declared name must be an indicator.
        check_indicator_columns(strategy.indicator_columns, f"strategy kind {name!r}")
        return strategy
    finally:
        if token is not None:
            _BASE_DIR.reset(token)

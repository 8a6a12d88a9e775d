"""The strategy agent: turns indicator history into BUY/SELL/HOLD signals, published on
strategy.signal.{strategy_id}.{symbol} only when a strategy changes its mind.

The decisions are pure and shared with the backtester (decision 0005): ``history``
(IndicatorHistory), ``strategies`` (Decision, build_strategy, run_strategy, on_change) and
``signals`` (change_at, build_signal). ``agent`` is the thin process around them.

``api`` is the strategy API every strategy — built-in or the user's own — is written against;
``loader`` loads a user strategy from ``path/to/file.py:ClassName`` or ``module:ClassName``
(decision 0021); ``cli`` and ``template`` are ``tradebus strategy new|list``.
"""

from typing import Any

__all__ = ["AGENT_CLASS", "StrategyAgent"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the backtester imports agents.strategy.strategies and must not
    # pull in the process code (bus, stores) with it.
    if name in __all__:
        from agents.strategy.agent import StrategyAgent

        return StrategyAgent
    raise AttributeError(f"module 'agents.strategy' has no attribute {name!r}")

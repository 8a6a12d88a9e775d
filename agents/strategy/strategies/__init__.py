"""Pure strategies over an ``IndicatorHistory``: shared by the strategy agent and the backtester.

Public API (decision 0005): ``Decision``, ``Strategy``, ``StrategyParams``,
``StrategyConfigError``, ``STRATEGY_KINDS``, ``build_strategy``, ``run_strategy``,
``on_change``, ``is_change`` and the strategy classes.
"""

from agents.strategy.api import Decision, Strategy, StrategyConfigError, StrategyParams
from agents.strategy.strategies.bollinger import BollingerParams, BollingerReversionStrategy
from agents.strategy.strategies.combined import CombinedParams, CombinedStrategy, MemberSpec
from agents.strategy.strategies.macd import MacdCrossParams, MacdCrossStrategy
from agents.strategy.strategies.registry import STRATEGY_KINDS, build_strategy
from agents.strategy.strategies.rsi import RSI_PRESETS, RsiParams, RsiStrategy
from agents.strategy.strategies.runner import is_change, on_change, run_strategy
from agents.strategy.strategies.sma import SmaCrossParams, SmaCrossStrategy

__all__ = [
    "RSI_PRESETS",
    "STRATEGY_KINDS",
    "BollingerParams",
    "BollingerReversionStrategy",
    "CombinedParams",
    "CombinedStrategy",
    "Decision",
    "MacdCrossParams",
    "MacdCrossStrategy",
    "MemberSpec",
    "RsiParams",
    "RsiStrategy",
    "SmaCrossParams",
    "SmaCrossStrategy",
    "Strategy",
    "StrategyConfigError",
    "StrategyParams",
    "build_strategy",
    "is_change",
    "on_change",
    "run_strategy",
]

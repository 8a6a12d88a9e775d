"""What to run: a strategy (kind or configured instance) with parameter overrides, one run or a
grid, and the ranking of a grid's results.

Overrides are split by name: a field of ``IndicatorParams`` (``rsi_period``, ``bb_period``,
``macd_fast``, ...) changes the indicators the technical analysis agent would compute; any other
name is a parameter of the strategy, validated by its kind (``fast``/``slow`` of ``sma_cross``,
``oversold`` of ``rsi``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.backtest.data import Window
from agents.backtest.engine import BacktestConfig, BacktestResult, build_history, run_backtest
from agents.backtest.metrics import Metrics
from agents.strategy.config import load_strategy_config
from agents.strategy.loader import is_reference, load_strategy_class
from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import STRATEGY_KINDS, Strategy, StrategyConfigError, build_strategy
from agents.technical_analysis.indicators import IndicatorParams
from protocol.exits import ExitSettings

__all__ = [
    "ASCENDING_METRICS",
    "RANKABLE",
    "RunSpec",
    "StrategyChoice",
    "rank",
    "resolve_strategy",
    "run_specs",
    "spec_for",
    "warmup_for",
]

# Metrics where smaller is better; every other one ranks largest first.
ASCENDING_METRICS = frozenset({"max_drawdown", "max_drawdown_bars", "max_drawdown_duration_hours"})
RANKABLE: tuple[str, ...] = tuple(name for name in Metrics.__dataclass_fields__ if name not in ("bars", "periods_per_year"))


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    """The strategy a backtest starts from: a kind, or a configured instance (its id, kind,
    parameters and, as defaults for the data, its first symbol and timeframe)."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    strategy_id: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    # Where a relative file reference in ``kind`` is resolved from (the config file's folder).
    base_dir: Path | None = None
    # The instance's protective exits (``[strategies.exits]``); ``--exits`` replaces them.
    exits: ExitSettings | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One fully specified run: a built strategy and the indicator parameters it sees."""

    choice: StrategyChoice
    overrides: dict[str, Any]
    strategy: Strategy
    indicator_params: IndicatorParams

    @property
    def strategy_params(self) -> dict[str, Any]:
        return dict(self.strategy.params.model_dump(mode="json"))


def resolve_strategy(name: str, config_path: str | Path | None = None) -> StrategyChoice:
    """An instance id from the strategy config file (the strategy agent's own unless
    ``config_path`` names another), else a strategy kind (``sma_cross``) with its defaults, or
    a user strategy ``path/to/file.py:ClassName`` / ``package.module:ClassName`` (a relative
    path from the current directory), checked here so a broken file is reported at once."""
    if is_reference(name):
        load_strategy_class(name)  # at once: StrategyLoadError names the file and line
        return StrategyChoice(name=name.strip(), kind=name.strip())
    kind = name.strip().lower()
    try:
        # Not built: another instance's broken file must not block this one (built by spec_for).
        instances = load_strategy_config(config_path, build=False)
    except StrategyConfigError:
        if config_path is not None or kind not in STRATEGY_KINDS:
            raise
        instances = []  # a broken default config must not block a plain kind
    for instance in instances:
        if instance.strategy_id == name:
            return StrategyChoice(
                name=name,
                kind=instance.kind,
                params=dict(instance.params),
                strategy_id=instance.strategy_id,
                symbol=instance.symbols[0],
                timeframe=instance.timeframe,
                base_dir=instance.base_dir,
                exits=instance.exits,
            )
    if kind in STRATEGY_KINDS:
        return StrategyChoice(name=kind, kind=kind)
    # An instance may share its kind's name ("combined"): name each once.
    known = ", ".join(dict.fromkeys([i.strategy_id for i in instances] + list(STRATEGY_KINDS)))
    raise StrategyConfigError(
        f"no strategy kind or configured instance {name!r}; known: {known} (or your own: path/to/file.py:ClassName)"
    )


def spec_for(choice: StrategyChoice, base: IndicatorParams, overrides: Mapping[str, Any]) -> RunSpec:
    """Build the strategy and the indicator parameters with ``overrides`` applied."""
    indicator_keys = {k: v for k, v in overrides.items() if k in IndicatorParams.model_fields}
    strategy_keys = {k: v for k, v in overrides.items() if k not in IndicatorParams.model_fields}
    try:
        indicators = IndicatorParams(**{**base.model_dump(), **indicator_keys}) if indicator_keys else base
    except ValidationError as exc:
        raise StrategyConfigError(f"bad indicator parameters {indicator_keys}: {exc.errors()[0]['msg']}") from None
    strategy = build_strategy(choice.kind, {**choice.params, **strategy_keys}, base_dir=choice.base_dir)
    return RunSpec(choice, dict(overrides), strategy, indicators)


def warmup_for(specs: Sequence[RunSpec]) -> int:
    """Candles to keep before the window: the TA agent's window, or more when a strategy reads
    further back (its ``lookback``), so every run of a grid starts from warm indicators."""
    return max(max(spec.indicator_params.window, spec.strategy.lookback + 1) for spec in specs)


def run_specs(
    window: Window,
    specs: Sequence[RunSpec],
    config: BacktestConfig,
    *,
    fast: bool = True,
    live_window: bool = False,
    on_done: Callable[[int], None] | None = None,
    on_bars: Callable[[int], None] | None = None,
) -> list[BacktestResult]:
    """Run every spec over the same window; indicator columns are computed once per distinct
    ``IndicatorParams`` and set of columns read, and shared (``live_window``: see
    ``build_history``). ``on_done(runs finished)`` after each run; ``on_bars(window candles
    done)`` during each run, as the engine's ``progress`` (from 0 to ``window.traded`` per run)."""
    histories: dict[tuple[IndicatorParams, frozenset[str] | None], IndicatorHistory] = {}
    results = []
    for number, spec in enumerate(specs, start=1):
        columns = spec.strategy.indicator_columns
        key = (spec.indicator_params, columns)
        history = histories.get(key)
        if history is None:
            history = histories[key] = build_history(window, spec.indicator_params, live_window=live_window, only=columns)
        results.append(run_backtest(window, spec.strategy, spec.indicator_params, config, history=history, progress=on_bars, fast=fast))
        if on_done is not None:
            on_done(number)
    return results


def rank(results: Sequence[BacktestResult], by: str) -> list[BacktestResult]:
    """Best first by metric ``by``; runs where it is undefined (None) come last."""
    if by not in RANKABLE:
        raise ValueError(f"cannot rank by {by!r}; one of {', '.join(RANKABLE)}")
    ascending = by in ASCENDING_METRICS

    def key(result: BacktestResult) -> tuple[int, float]:
        value = getattr(result.metrics, by)
        if value is None:
            return (1, 0.0)
        return (0, float(value) if ascending else -float(value))

    return sorted(results, key=key)

"""The indicators the enabled strategies declare: their union, for the technical analysis agent
(decision 0022).

The technical analysis agent reads the strategy agent's own config (``STRATEGY_CONFIG``, the
same environment overrides) and builds every enabled instance exactly as the strategy agent
does, so it computes what those strategies read — no more, no less. An instance that cannot be
built is left out and named (the strategy agent reports it broken and does not run it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.strategy.api import INDICATORS, StrategyConfigError
from agents.strategy.config import StrategyInstanceConfig, load_strategy_config

__all__ = ["Declared", "declared_by_config", "union_of"]


@dataclass(frozen=True, slots=True)
class Declared:
    """What the enabled strategies read.

    ``columns``: every declared indicator column, fixed (``rsi``) and parametrised (``rsi_7``),
    each once. ``reads_any_fixed``: some strategy declares no columns (None: it may read any
    fixed one). ``by_strategy``: each instance's own declaration. ``broken``: instances left
    out, with why."""

    columns: frozenset[str] = frozenset()
    reads_any_fixed: bool = False
    by_strategy: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    broken: Mapping[str, str] = field(default_factory=dict)

    @property
    def parametrised(self) -> frozenset[str]:
        """The declared columns outside the fixed set (``rsi_7``, ``ema_50``)."""
        return frozenset(name for name in self.columns if name not in INDICATORS)

    def declared_by(self, column: str) -> list[str]:
        """The strategy ids declaring ``column`` (for error messages)."""
        return sorted(sid for sid, columns in self.by_strategy.items() if columns is not None and column in columns)


def union_of(configs: Iterable[StrategyInstanceConfig]) -> Declared:
    """The union of the enabled instances' ``indicator_columns`` ("close" is not an indicator)."""
    columns: set[str] = set()
    reads_any = False
    by_strategy: dict[str, frozenset[str] | None] = {}
    broken: dict[str, str] = {}
    for config in configs:
        if not config.enabled:
            continue
        try:
            declared = config.build().indicator_columns
        except StrategyConfigError as exc:
            broken[config.strategy_id] = str(exc)
            continue
        by_strategy[config.strategy_id] = declared
        if declared is None:
            reads_any = True
        else:
            columns |= declared - {"close"}
    return Declared(frozenset(columns), reads_any, by_strategy, broken)


def declared_by_config(
    path: Path | str | None,
    *,
    environ: Mapping[str, str],
    default_symbols: Sequence[str],
    default_timeframe: str,
) -> Declared:
    """``union_of`` the instances of a strategy config file, read as the strategy agent reads it;
    StrategyConfigError when the file itself cannot be used."""
    configs = load_strategy_config(
        path, environ=environ, default_symbols=default_symbols, default_timeframe=default_timeframe, build=False
    )
    return union_of(configs)

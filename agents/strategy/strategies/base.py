"""What every strategy is: validated parameters, a lookback, and ``decide(history, i)``.

A strategy is a pure function of the indicator history up to and including row ``i``. It
never reads a later row (decision 0005; tests change future rows and check past decisions do
not move), never does I/O, and returns a ``Decision`` with a confidence in [0, 1].

Confidence conventions shared by all strategies:

* HOLD always carries confidence 0.0 — confidence measures conviction in a trade, and HOLD
  is the absence of one; its reason says why (inside the band, no crossover, warming up).
* A BUY or SELL starts at 0.5 exactly at its trigger and rises to 1.0 as the trigger is
  exceeded by a strategy-specific scale (documented on each strategy).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.strategy.history import IndicatorHistory
from protocol import SignalSide

__all__ = [
    "BUY",
    "HOLD",
    "SELL",
    "Decision",
    "Strategy",
    "StrategyConfigError",
    "StrategyParams",
    "clamp01",
    "cross_confidence",
    "cross_direction",
    "describe_validation_error",
    "finite_or_none",
]

BUY = SignalSide.BUY
SELL = SignalSide.SELL
HOLD = SignalSide.HOLD


class StrategyConfigError(ValueError):
    """A strategy kind or parameter is wrong; the message says which and why."""


class Decision(NamedTuple):
    """A strategy's answer for one candle.

    ``used`` holds the values the decision read, by name (None where the value was still
    warming up); they travel on the Signal as the audit trail. A NamedTuple because the
    backtester creates one per bar: cheap to build, immutable, comparable.
    """

    side: SignalSide
    confidence: float
    reason: str
    used: dict[str, float | None]


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Strategy(ABC):
    """One strategy kind with validated parameters.

    Subclasses set ``kind`` (the name in config files and on the Signal) and ``Params`` (a
    ``StrategyParams`` subclass) and implement ``decide`` and ``lookback``.
    """

    kind: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]

    def __init__(self, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, self.Params):
            self.params: Any = params
        elif isinstance(params, StrategyParams):
            raise StrategyConfigError(f"{self.kind}: expected {self.Params.__name__}, got {type(params).__name__}")
        else:
            try:
                self.params = self.Params.model_validate(dict(params or {}))
            except ValidationError as exc:
                problem = describe_validation_error(exc)
                raise StrategyConfigError(f"bad parameters for strategy kind {self.kind!r}: {problem}") from None

    @property
    @abstractmethod
    def lookback(self) -> int:
        """How many rows before ``i`` ``decide(history, i)`` reads (its window reaches back to
        row ``i - lookback``). A decision at a row with fewer rows before it, in a history that
        does not start at the series' first candle, may differ from the full-history one."""

    @abstractmethod
    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        """The decision for row ``i``, reading only rows ``<= i``."""

    def warming(self, missing: str, used: dict[str, float | None]) -> Decision:
        """HOLD while an input is not available yet."""
        return Decision(HOLD, 0.0, f"warming up: {missing} not available", used)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({values})"


# ---------------------------------------------------------------------- shared helpers


def check_row(history: IndicatorHistory, i: int) -> None:
    """Refuse a negative row: numpy would silently read from the end, i.e. the future.
    (A row past the end raises IndexError in numpy already.)"""
    if i < 0:
        raise IndexError(f"row {i} outside a history of {len(history)} rows")


def clamp01(value: float) -> float:
    """``value`` limited to [0, 1]; NaN becomes 0."""
    if not value > 0.0:
        return 0.0
    return 1.0 if value > 1.0 else value


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def cross_direction(fast: np.ndarray, slow: np.ndarray, i: int) -> float:
    """+1.0 when ``fast`` crossed above ``slow`` between rows i-1 and i, -1.0 when it crossed
    below, 0.0 for no cross, NaN while either line is warming up (i >= 1).

    A cross means the gap fast - slow changed sign. A gap of exactly 0 belongs to no side: the
    side before it is the last non-zero gap, so touching the other line and turning back is not
    a cross (and a cross that passes through an exact 0 is counted once, when it lands).
    """
    after = fast.item(i) - slow.item(i)
    k = i - 1
    before = fast.item(k) - slow.item(k)
    while before == 0.0 and k > 0:
        k -= 1
        earlier = fast.item(k) - slow.item(k)
        if earlier != earlier:
            break  # equal ever since the warm-up ended: leaving that is a cross
        before = earlier
    if before != before or after != after:
        return float("nan")
    if before <= 0.0 < after:
        return 1.0
    if before >= 0.0 > after:
        return -1.0
    return 0.0


def cross_confidence(fast: np.ndarray, slow: np.ndarray, i: int, window: int) -> float:
    """Confidence of a crossover of ``fast`` over ``slow`` at row ``i``.

    With spread = fast - slow: 0.5 + 0.5 * min(1, |spread[i]| / mean |spread| over the
    ``window`` rows ending at i (NaN rows skipped)). A cross whose gap is already as wide as
    the recent typical gap scores 1.0, a bare touch 0.5. Reads rows i - window + 1 .. i only.
    """
    lo = max(0, i - window + 1)
    recent = np.abs(fast[lo : i + 1] - slow[lo : i + 1])
    recent = recent[~np.isnan(recent)]
    typical = float(recent.mean()) if recent.size else 0.0
    if not typical > 0.0:
        return 0.5
    return clamp01(0.5 + 0.5 * min(1.0, abs(fast.item(i) - slow.item(i)) / typical))


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: 'field: message (got value)'."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(parameters)"
        text = f"{where}: {error['msg']}"
        if error["type"] not in ("missing",) and error["loc"]:
            text += f" (got {error['input']!r})"
        parts.append(text)
    return "; ".join(parts)

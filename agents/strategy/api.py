"""The strategy API: what every strategy is, built-in or your own (decision 0021).

A strategy is a class derived from ``Strategy`` with

* ``Params`` — a ``StrategyParams`` subclass (a Pydantic model: frozen, unknown keys refused)
  holding its parameters with their defaults and bounds. The config's ``[strategies.params]``
  table, ``--params`` and ``--grid`` are validated by it; ``self.params`` is the validated
  instance.
* ``COLUMNS`` — the indicator columns ``decide`` reads: names from ``INDICATORS`` (today's
  fixed set, the fields of ``protocol.Indicators`` as the technical analysis agent publishes
  them in every ``IndicatorSnapshot``). ``close`` is always readable. None (the default) means
  "may read any"; a backtest then computes every indicator. A backtest computes only the
  declared columns and refuses a read of an undeclared one, so what a strategy reads in a
  backtest is what it reads live. (Later, a strategy will declare indicators with their own
  parameters here — RSI 7 next to RSI 14 — through the same ``indicator_columns`` property.)
* ``lookback`` — how many candles before row ``i`` ``decide`` reads (0: row ``i`` only).
* ``decide(history, i)`` — the decision for candle ``i``: a ``Decision`` of side (``BUY``,
  ``SELL`` or ``HOLD``), confidence in [0, 1], a reason (text on the Signal) and ``used`` (the
  values it read, by name: the audit trail on the Signal).

``history`` is an ``IndicatorHistory``: one float64 numpy column per name, oldest row first,
NaN while an indicator is warming up. ``history.col("rsi").item(i)`` is the RSI of candle ``i``;
``history.col("close")[i - 5 : i + 1]`` the last six closes. ``decide`` must read rows ``<= i``
only, keep no state between calls and do no I/O: the backtester calls it on any row in any
order (and only on rows where the side can change when ``candidate_rows`` is given), the live
agent on each new candle after a restart from a history rebuilt from InfluxDB; both must get
the same answer for the same candle.

The built-in kinds (``agents/strategy/strategies``) are written against this module exactly as
a user strategy is, and the backtester and the strategy agent reach every strategy through
``agents.strategy.strategies.build_strategy`` — by kind name or by reference
``path/to/file.py:ClassName`` / ``package.module:ClassName`` (``agents.strategy.loader``).

Confidence conventions of the built-in kinds: HOLD carries 0.0 (it is the absence of a trade);
a BUY or SELL starts at 0.5 exactly at its trigger and rises to 1.0 as the trigger is exceeded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.strategy.history import INDICATOR_FIELDS, IndicatorHistory
from protocol import SignalSide

__all__ = [
    "BUY",
    "HOLD",
    "INDICATORS",
    "SELL",
    "Decision",
    "IndicatorHistory",
    "SignalSide",
    "Strategy",
    "StrategyConfigError",
    "StrategyLoadError",
    "StrategyParams",
    "StrategyRuntimeError",
    "describe_validation_error",
    "load_strategy",
    "make_history",
]

BUY = SignalSide.BUY
SELL = SignalSide.SELL
HOLD = SignalSide.HOLD

#: The indicator columns a strategy may read besides ``close`` (today's fixed set).
INDICATORS: Final[tuple[str, ...]] = INDICATOR_FIELDS

_NO_VALUES: Final[Mapping[str, float | None]] = MappingProxyType({})


class StrategyConfigError(ValueError):
    """A strategy kind or parameter is wrong; the message says which and why."""


class StrategyLoadError(StrategyConfigError):
    """A strategy file or module that cannot be used; ``file`` and ``line`` say where (line
    None when the problem is not at one line, e.g. a missing file)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")
        self.file, self.line = file, line


class StrategyRuntimeError(RuntimeError):
    """A strategy's ``decide`` raised or returned something that is not a valid Decision; the
    message names the file and line and the candle."""


class Decision(NamedTuple):
    """A strategy's answer for one candle.

    ``used`` holds the values the decision read, by name (None where a value was still warming
    up); they travel on the Signal as the audit trail. A NamedTuple because the backtester
    creates one per bar: cheap to build, immutable, comparable.
    """

    side: SignalSide
    confidence: float
    reason: str
    used: Mapping[str, float | None] = _NO_VALUES


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Strategy(ABC):
    """One strategy with validated parameters (see the module docstring for the contract).

    ``kind`` is the name of a built-in kind (``rsi``); a class that does not set it is named
    by its class name. ``Params`` defaults to a model without parameters.
    """

    kind: ClassVar[str] = "strategy"
    COLUMNS: ClassVar[frozenset[str] | None] = None
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__  # a subclass of a built-in kind is not that kind

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
    def lookback(self) -> int:
        """How many rows before ``i`` ``decide(history, i)`` reads (its window reaches back to
        row ``i - lookback``). A decision at a row with fewer rows before it, in a history that
        does not start at the series' first candle, may differ from the full-history one.
        0 by default: a threshold strategy reads row ``i`` only."""
        return 0

    @abstractmethod
    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        """The decision for row ``i``, reading only rows ``<= i``."""

    @property
    def indicator_columns(self) -> frozenset[str] | None:
        """The ``INDICATORS`` ``decide`` reads (``close`` is always there); None: it may read
        any. A backtest computes only these. Defaults to the class's ``COLUMNS``."""
        return self.COLUMNS

    def candidate_rows(self, history: IndicatorHistory) -> NDArray[np.bool_] | None:
        """Optional speed-up for a backtest: True on every row where ``decide`` MAY return BUY
        or SELL (a loose superset, from whole columns at once), so every other row is a HOLD
        for sure and need not be decided. None (the default): any row may trade.

        A mask must not restate ``decide``'s rules, only bound them (a crossover needs the sign
        of the gap to change, a threshold needs its input beyond it). The backtester refuses a
        run where ``decide`` contradicts the mask, and its ``--exhaustive`` mode ignores it."""
        return None

    def _decides_as(self, cls: type[Strategy]) -> bool:
        """True unless a subclass replaced ``cls.decide``: ``cls``'s mask only bounds its own rules."""
        return type(self).decide is cls.decide

    def warming(self, missing: str, used: dict[str, float | None]) -> Decision:
        """HOLD while an input is not available yet."""
        return Decision(HOLD, 0.0, f"warming up: {missing} not available", used)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({values})"


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


def make_history(
    close: Sequence[float] | None = None,
    *,
    start: datetime = datetime(2021, 1, 1, tzinfo=UTC),
    step: timedelta = timedelta(minutes=15),
    **indicators: Sequence[float | None],
) -> IndicatorHistory:
    """A small history for a strategy's tests: one row per value, candles ``step`` apart from
    ``start``; ``close`` defaults to 100 on every row; None is NaN (warming up).

    ``make_history(rsi=[None, 45.0, 25.0])`` is three candles whose RSI is warming up, 45, 25.
    """
    lengths = {len(values) for values in indicators.values()} | ({len(close)} if close is not None else set())
    if len(lengths) != 1:
        raise ValueError(f"give every column the same number of values (got lengths {sorted(lengths)})")
    n = lengths.pop()

    def column(values: Sequence[float | None]) -> NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    return IndicatorHistory.from_columns(
        [start + step * i for i in range(n)],
        column(close) if close is not None else np.full(n, 100.0),
        {name: column(values) for name, values in indicators.items()},
    )


def load_strategy(kind: str, params: Mapping[str, Any] | None = None, *, base_dir: Any = None) -> Strategy:
    """A strategy the way tradebus builds it: a built-in kind (``"rsi"``) or your own
    (``"path/to/file.py:ClassName"``, ``"package.module:ClassName"``), parameters validated,
    a file checked as the backtester and the strategy agent check it."""
    # Imported here: the built-in kinds import this module.
    from agents.strategy.strategies import build_strategy

    return build_strategy(kind, params, base_dir=base_dir)

"""The strategy API: what every strategy is, built-in or your own (decision 0021).

A strategy is a class derived from ``Strategy`` with

* ``Params`` — a ``StrategyParams`` subclass (a Pydantic model: frozen, unknown keys refused)
  holding its parameters with their defaults and bounds. The config's ``[strategies.params]``
  table, ``--params`` and ``--grid`` are validated by it; ``self.params`` is the validated
  instance.
* ``COLUMNS`` — the indicator columns ``decide`` reads (decision 0022), either
  - names from ``INDICATORS``: the fixed set, the fields of ``protocol.Indicators``, computed
    with the technical analysis agent's ``TA_*`` periods (``rsi`` is RSI 14 by default), or
  - indicators with their own parameters, by canonical name: ``rsi_7``, ``ema_50``,
    ``atr_14``, ``macd_hist_12_26_9``, ``bb_lower_20_2``, ``stoch_k_14_3_3``,
    ``donchian_upper_20`` (every family: ``protocol.indicators.FAMILIES``; ``indicator("rsi",
    period=7)`` spells a name for you). RSI 7 and RSI 14 side by side is
    ``frozenset({"rsi_7", "rsi_14"})``.
  ``close`` is always readable. None (the default) means "may read any fixed one"; a backtest
  then computes the fixed set. The technical analysis agent computes the union of what the
  enabled strategies declare; a backtest computes only the declared columns and refuses a read
  of an undeclared one, so what a strategy reads in a backtest is what it reads live. When the
  columns depend on the parameters (an RSI period as a parameter), override the
  ``indicator_columns`` property instead: it is read after ``Params`` are validated. A name
  that is no indicator or has a bad parameter (``rsi_1``) is refused when the strategy is built,
  naming the strategy (and, for your own file, its file and line).
* ``lookback`` — how many candles before row ``i`` ``decide`` reads (0: row ``i`` only).
* ``decide(history, i)`` — the decision for candle ``i``: a ``Decision`` of side (``BUY``,
  ``SELL`` or ``HOLD``), confidence in [0, 1], a reason (text on the Signal) and ``used`` (the
  values it read, by name: the audit trail on the Signal).

``history`` is an ``IndicatorHistory``: one float64 numpy column per name, oldest row first,
NaN while an indicator is warming up. ``history.col("rsi").item(i)`` is the RSI of candle ``i``,
``history.col("rsi_7").item(i)`` its 7-period RSI;
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
from protocol.indicators import IndicatorNameError, canonical_column, check_column

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
    "check_indicator_columns",
    "describe_validation_error",
    "indicator",
    "load_strategy",
    "make_history",
]

BUY = SignalSide.BUY
SELL = SignalSide.SELL
HOLD = SignalSide.HOLD

#: The fixed indicator columns (``protocol.Indicators``); parametrised ones are named by
#: ``indicator(...)`` / ``protocol.indicators``.
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
        """The indicator columns ``decide`` reads: fixed names (``INDICATORS``) and parametrised
        ones (``rsi_7``); ``close`` is always there. None: it may read any fixed one. The
        technical analysis agent computes the union over the enabled strategies, a backtest
        only these. Defaults to the class's ``COLUMNS``; override it to derive the names from
        ``self.params`` (``frozenset({indicator("rsi", period=self.params.period)})``)."""
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


def indicator(family: str, output: str | None = None, **params: float) -> str:
    """The column name of an indicator with parameters, checked: ``indicator("rsi", period=7)``
    is ``"rsi_7"``, ``indicator("bb", "bb_lower", period=20, stddev=2)`` ``"bb_lower_20_2"``,
    ``indicator("donchian", "donchian_upper", period=20)`` ``"donchian_upper_20"``.
    StrategyConfigError for an unknown family, output or a bad parameter."""
    try:
        return canonical_column(family, output, **params)
    except IndicatorNameError as exc:
        raise StrategyConfigError(str(exc)) from None


def check_indicator_columns(columns: object, owner: str) -> frozenset[str] | None:
    """``columns`` (a strategy's ``COLUMNS`` / ``indicator_columns``) as a frozenset of valid
    names, or None; StrategyConfigError starting with ``owner`` (the strategy) naming the bad
    name and why."""
    if columns is None:
        return None
    if isinstance(columns, str) or not isinstance(columns, frozenset | set | tuple | list):
        raise StrategyConfigError(
            f"{owner}: indicator columns must be a set of names such as frozenset({{'rsi_7'}}), got {columns!r}"
        )
    for name in sorted(columns, key=str):
        if not isinstance(name, str):
            raise StrategyConfigError(f"{owner}: indicator column names must be text, got {name!r}")
        try:
            check_column(name)
        except IndicatorNameError as exc:
            raise StrategyConfigError(f"{owner} declares a bad indicator: {exc}") from None
    return frozenset(columns)


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

"""Indicator names with parameters: the catalogue of indicator families and their canonical
column names (pure, no I/O; decision 0022).

A strategy declares the indicators it reads by column name. Two kinds of names exist:

* the fixed set — the fields of ``protocol.Indicators`` (``rsi``, ``macd``, ``bb_upper``, ...),
  computed with the technical analysis agent's ``TA_*`` periods and always published in
  ``IndicatorSnapshot.indicators``;
* parametrised names — ``<output>_<param>_<param>...`` of a family in ``FAMILIES``:
  ``rsi_7``, ``ema_50``, ``atr_14``, ``macd_signal_12_26_9``, ``bb_upper_20_2``,
  ``donchian_upper_20``. They travel in ``IndicatorSnapshot.extra`` and are stored in InfluxDB
  under the same name.

A name has one spelling (``canonical_column``): integers without leading zeros, floats as
Python's ``format(value, "g")`` (``2`` not ``2.0``, ``2.5``). ``parse_column`` turns a name back
into its ``IndicatorSpec`` (family and parameter values) and output, and refuses an unknown
family, a wrong number of parameters or a value out of range with a message saying which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "FAMILIES",
    "Family",
    "IndicatorNameError",
    "IndicatorSpec",
    "Param",
    "canonical_column",
    "check_column",
    "describe_families",
    "parse_column",
]


class IndicatorNameError(ValueError):
    """An indicator column name that names no supported indicator, or bad parameters."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a family: integer or float, with inclusive bounds."""

    name: str
    kind: type[int] | type[float]
    low: float
    high: float

    def check(self, value: float, family: str) -> float:
        if self.kind is int and (isinstance(value, bool) or not float(value).is_integer()):
            raise IndicatorNameError(f"{family}: {self.name} must be a whole number, got {value!r}")
        if not self.low <= value <= self.high:
            raise IndicatorNameError(f"{family}: {self.name} must be within {self.low:g}..{self.high:g}, got {value:g}")
        return int(value) if self.kind is int else float(value)


@dataclass(frozen=True, slots=True)
class Family:
    """An indicator function: its parameters (in name order) and the columns it outputs."""

    name: str
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    description: str
    # (smaller, larger) parameter names that must be strictly ordered (MACD fast < slow).
    ordered: tuple[str, str] | None = None


def _period(low: int = 2) -> tuple[Param, ...]:
    return (Param("period", int, low, 10_000),)


# Bounds follow TA-Lib's own (a period of 1 is allowed where TA-Lib allows it).
FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        Family("rsi", _period(), ("rsi",), "Relative Strength Index (TA-Lib RSI), 0-100"),
        Family("sma", _period(), ("sma",), "Simple moving average of the close (TA-Lib SMA)"),
        Family("ema", _period(), ("ema",), "Exponential moving average of the close (TA-Lib EMA)"),
        Family("wma", _period(), ("wma",), "Weighted moving average of the close (TA-Lib WMA)"),
        Family("atr", _period(1), ("atr",), "Average True Range (TA-Lib ATR)"),
        Family("natr", _period(1), ("natr",), "Normalised ATR, percent of the close (TA-Lib NATR)"),
        Family("adx", _period(), ("adx",), "Average Directional Index (TA-Lib ADX), 0-100"),
        Family("cci", _period(), ("cci",), "Commodity Channel Index (TA-Lib CCI)"),
        Family("mfi", _period(), ("mfi",), "Money Flow Index (TA-Lib MFI), 0-100"),
        Family("willr", _period(), ("willr",), "Williams %R (TA-Lib WILLR), -100-0"),
        Family("roc", _period(1), ("roc",), "Rate of change, percent (TA-Lib ROC)"),
        Family("mom", _period(1), ("mom",), "Momentum: close - close n candles back (TA-Lib MOM)"),
        Family(
            "macd",
            (Param("fast", int, 2, 10_000), Param("slow", int, 2, 10_000), Param("signal", int, 1, 10_000)),
            ("macd", "macd_signal", "macd_hist"),
            "MACD line, signal line and histogram (TA-Lib MACD)",
            ordered=("fast", "slow"),
        ),
        Family(
            "bb",
            (Param("period", int, 2, 10_000), Param("stddev", float, 0.01, 10)),
            ("bb_upper", "bb_middle", "bb_lower", "bb_percent_b", "bb_bandwidth"),
            "Bollinger bands (TA-Lib BBANDS, SMA), %B and bandwidth",
        ),
        Family(
            "stoch",
            (Param("fastk", int, 1, 10_000), Param("slowk", int, 1, 10_000), Param("slowd", int, 1, 10_000)),
            ("stoch_k", "stoch_d"),
            "Slow stochastic %K and %D (TA-Lib STOCH, SMA smoothing)",
        ),
        Family(
            "donchian",
            _period(),
            ("donchian_upper", "donchian_lower", "donchian_middle"),
            "Donchian channel: highest high, lowest low (TA-Lib MAX/MIN) and their midpoint",
        ),
        # Without parameters: reachable only by their fixed names (obv, vwap).
        Family("obv", (), ("obv",), "On-Balance Volume (TA-Lib OBV)"),
        Family("vwap", (), ("vwap",), "Session VWAP anchored at 00:00 UTC (computed here; TA-Lib has none)"),
    )
}

# Output prefix -> family, longest first so "macd_signal_..." is not read as "macd" + "signal_...".
_OUTPUTS: Final[tuple[tuple[str, Family], ...]] = tuple(
    sorted(((out, f) for f in FAMILIES.values() for out in f.outputs), key=lambda item: -len(item[0]))
)
_NUMBER: Final = re.compile(r"\d+(\.\d+)?")
_MAX_NAME: Final = 64  # a key of Signal.indicators


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator computation: a family and its parameter values (in the family's order).

    Two declarations of the same computation are equal specs, so a union computes it once."""

    family: str
    values: tuple[float, ...]

    @classmethod
    def of(cls, family: str, **params: float) -> IndicatorSpec:
        """``IndicatorSpec.of("rsi", period=7)``; every parameter of the family must be given."""
        found = FAMILIES.get(family)
        if found is None:
            raise IndicatorNameError(f"unknown indicator {family!r}; known: {', '.join(FAMILIES)}")
        names = [p.name for p in found.params]
        if set(params) != set(names):
            raise IndicatorNameError(f"{family} takes {', '.join(names) or 'no parameters'}; got {', '.join(sorted(params)) or 'none'}")
        return cls._checked(found, tuple(params[name] for name in names))

    @classmethod
    def _checked(cls, family: Family, values: tuple[float, ...]) -> IndicatorSpec:
        checked = tuple(p.check(v, family.name) for p, v in zip(family.params, values, strict=True))
        if family.ordered is not None:
            names = [p.name for p in family.params]
            small, large = (checked[names.index(n)] for n in family.ordered)
            if not small < large:
                raise IndicatorNameError(f"{family.name}: {family.ordered[0]} ({small:g}) must be < {family.ordered[1]} ({large:g})")
        return cls(family.name, checked)

    @property
    def params(self) -> dict[str, float]:
        return {p.name: v for p, v in zip(FAMILIES[self.family].params, self.values, strict=True)}

    def column(self, output: str | None = None) -> str:
        """The canonical column name of one output (the family's first by default)."""
        family = FAMILIES[self.family]
        out = family.outputs[0] if output is None else output
        if out not in family.outputs:
            raise IndicatorNameError(f"{self.family} outputs {', '.join(family.outputs)}, not {out!r}")
        return "_".join((out, *(format(v, "g") if isinstance(v, float) else str(v) for v in self.values)))

    def columns(self) -> tuple[str, ...]:
        return tuple(self.column(out) for out in FAMILIES[self.family].outputs)


def canonical_column(family: str, output: str | None = None, **params: float) -> str:
    """The column name of an indicator with parameters: ``canonical_column("rsi", period=7)``
    is ``rsi_7``; ``canonical_column("bb", "bb_lower", period=20, stddev=2)`` ``bb_lower_20_2``."""
    return IndicatorSpec.of(family, **params).column(output)


@lru_cache(maxsize=4096)
def parse_column(name: str) -> tuple[IndicatorSpec, str]:
    """The spec and output of a parametrised column name; IndicatorNameError says what is wrong."""
    if not isinstance(name, str) or not name:
        raise IndicatorNameError(f"indicator name must be non-empty text, got {name!r}")
    if len(name) > _MAX_NAME:
        raise IndicatorNameError(f"indicator name {name[:_MAX_NAME]!r}... is longer than {_MAX_NAME} characters")
    for output, family in _OUTPUTS:
        if not name.startswith(output + "_"):
            continue
        parts = name[len(output) + 1 :].split("_")
        if not all(_NUMBER.fullmatch(part) for part in parts):
            continue
        if len(parts) != len(family.params):
            wanted = "_".join(f"<{p.name}>" for p in family.params)
            raise IndicatorNameError(f"{name!r}: {output} takes {len(family.params)} parameter(s): {output}_{wanted}")
        try:
            spec = IndicatorSpec._checked(family, tuple(float(part) for part in parts))
        except IndicatorNameError as exc:
            raise IndicatorNameError(f"{name!r}: {exc}") from None
        canonical = spec.column(output)
        if canonical != name:
            raise IndicatorNameError(f"{name!r} is not written canonically; write {canonical!r}")
        return spec, output
    raise IndicatorNameError(
        f"unknown indicator column {name!r}; a fixed name (protocol.Indicators) or <output>_<params> of: "
        + describe_families()
    )


def check_column(name: str) -> None:
    """Nothing for a readable column — ``close``, a fixed name (``protocol.Indicators``) or a
    valid parametrised name; IndicatorNameError saying why for anything else."""
    # Imported here: protocol.messages.analysis imports this module.
    from protocol.messages.analysis import Indicators

    if name == "close" or name in Indicators.model_fields:
        return
    parse_column(name)


def describe_families() -> str:
    """One line listing every family with its name pattern, e.g. ``rsi_<period>``."""
    patterns = []
    for family in FAMILIES.values():
        if family.params:
            tail = "_".join(f"<{p.name}>" for p in family.params)
            patterns.append(f"{'/'.join(family.outputs)}_{tail}")
    return ", ".join(patterns)

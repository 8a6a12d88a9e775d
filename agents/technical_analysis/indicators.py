"""Indicators as pure columnar functions (no I/O): shared by the TA agent and the backtester.

See claudedocs/decisions/0005-shared-decision-code.md and 0022-indicators-on-demand.md. A
column is named either by a field of ``protocol.Indicators`` (the fixed set, computed with the
periods of ``IndicatorParams``, i.e. the ``TA_*`` settings) or by a parametrised name of
``protocol.indicators`` (``rsi_7``, ``ema_50``, ``donchian_upper_20``). Both resolve to an
``IndicatorSpec`` computed by ``functions.compute_spec``: one function per indicator family, and
one computation per distinct spec however many names ask for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.technical_analysis.functions import Column, Ohlcv, compute_spec, lookback, session_vwap
from protocol import Indicators
from protocol.indicators import FAMILIES, IndicatorNameError, IndicatorSpec, check_column, parse_column

__all__ = [
    "COLUMNS",
    "Column",
    "IndicatorNameError",
    "IndicatorParams",
    "WindowTooShort",
    "check_columns",
    "compute_columns",
    "epoch_ms",
    "extra_at",
    "indicators_at",
    "max_lookback",
    "resolve",
    "rolling_columns",
    "session_vwap",
    "to_decimal",
]

# The output keys: exactly the fields of protocol.Indicators, in their order.
COLUMNS: Final[tuple[str, ...]] = tuple(Indicators.model_fields)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# Decimal(repr(x)) of a float below this magnitude has an exponent beyond what the protocol's
# FiniteDecimal accepts (±60); such a value is rounding noise around zero, so it travels as 0.
_TINY: Final = 1e-30


class IndicatorParams(BaseModel):
    """Indicator periods (the usual defaults) and the window of candles one computation uses.

    ``window`` is the number of candles kept per series and fed to every computation: the
    indicators of candle t are those computed over the last ``window`` candles ending at t. It
    must exceed the longest TA-Lib warm-up (``max_lookback``), or no value would ever appear.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rsi_period: int = Field(default=14, ge=2, le=1000)
    macd_fast: int = Field(default=12, ge=2, le=1000)
    macd_slow: int = Field(default=26, ge=2, le=1000)
    macd_signal: int = Field(default=9, ge=1, le=1000)
    bb_period: int = Field(default=20, ge=2, le=1000)
    bb_stddev: float = Field(default=2.0, gt=0, le=10)
    sma_fast: int = Field(default=20, ge=2, le=1000)
    sma_slow: int = Field(default=50, ge=2, le=1000)
    ema_fast: int = Field(default=12, ge=2, le=1000)
    ema_slow: int = Field(default=26, ge=2, le=1000)
    atr_period: int = Field(default=14, ge=1, le=1000)
    adx_period: int = Field(default=14, ge=2, le=1000)
    stoch_fastk: int = Field(default=14, ge=1, le=1000)
    stoch_slowk: int = Field(default=3, ge=1, le=1000)
    stoch_slowd: int = Field(default=3, ge=1, le=1000)
    window: int = Field(default=500, ge=2, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> IndicatorParams:
        for fast, slow in (("macd_fast", "macd_slow"), ("sma_fast", "sma_slow"), ("ema_fast", "ema_slow")):
            if getattr(self, fast) >= getattr(self, slow):
                raise ValueError(f"{fast} ({getattr(self, fast)}) must be < {slow} ({getattr(self, slow)})")
        longest = self.max_lookback
        if self.window <= longest:
            raise ValueError(
                f"window ({self.window}) must exceed the longest indicator warm-up ({longest} candles)"
            )
        return self

    def lookbacks(self) -> dict[str, int]:
        """TA-Lib's own warm-up (leading NaN rows) of each fixed column."""
        return {name: lookback(resolve(name, self)[0]) for name in COLUMNS}

    @property
    def max_lookback(self) -> int:
        """The longest warm-up in candles: rows before it are NaN in at least one column."""
        return max(self.lookbacks().values())


def epoch_ms(open_time: ArrayLike | Sequence[datetime]) -> NDArray[np.int64]:
    """Open times as int64 epoch milliseconds, from epoch-ms integers, numpy datetime64 (taken
    as UTC) or timezone-aware datetimes."""
    array = np.asarray(open_time)
    if array.dtype.kind == "M":
        return array.astype("datetime64[ms]").astype(np.int64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "O":
        out = np.empty(len(array), dtype=np.int64)
        for i, moment in enumerate(array):
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise ValueError(f"open_time[{i}] must be a timezone-aware datetime, got {moment!r}")
            out[i] = (moment - _EPOCH) // _ONE_MS
        return out
    raise ValueError(f"open_time must be epoch milliseconds or datetimes, got dtype {array.dtype}")


def _float_column(values: ArrayLike, name: str, length: int) -> Column:
    column = np.ascontiguousarray(values, dtype=np.float64)
    if column.ndim != 1 or len(column) != length:
        raise ValueError(f"{name} must be a 1-d column of {length} values, got shape {column.shape}")
    return column


def _fixed(family: str, output: str, values: Callable[[IndicatorParams], tuple[float, ...]]) -> Callable[[IndicatorParams], tuple[IndicatorSpec, str]]:
    # Built directly (not parsed): IndicatorParams has validated the periods already.
    return lambda p: (IndicatorSpec(family, values(p)), output)


def _macd_values(p: IndicatorParams) -> tuple[float, ...]:
    return (p.macd_fast, p.macd_slow, p.macd_signal)


def _bb_values(p: IndicatorParams) -> tuple[float, ...]:
    return (p.bb_period, p.bb_stddev)


def _stoch_values(p: IndicatorParams) -> tuple[float, ...]:
    return (p.stoch_fastk, p.stoch_slowk, p.stoch_slowd)


# Each fixed column as (spec, output) under the TA_* periods: the same computation a declared
# parametrised name gets (``rsi`` with TA_RSI_PERIOD=7 is ``rsi_7``, computed once if both are asked).
_FIXED: Final[dict[str, Callable[[IndicatorParams], tuple[IndicatorSpec, str]]]] = {
    "rsi": _fixed("rsi", "rsi", lambda p: (p.rsi_period,)),
    **{name: _fixed("macd", name, _macd_values) for name in FAMILIES["macd"].outputs},
    **{name: _fixed("bb", name, _bb_values) for name in FAMILIES["bb"].outputs},
    "sma_fast": _fixed("sma", "sma", lambda p: (p.sma_fast,)),
    "sma_slow": _fixed("sma", "sma", lambda p: (p.sma_slow,)),
    "ema_fast": _fixed("ema", "ema", lambda p: (p.ema_fast,)),
    "ema_slow": _fixed("ema", "ema", lambda p: (p.ema_slow,)),
    "atr": _fixed("atr", "atr", lambda p: (p.atr_period,)),
    "adx": _fixed("adx", "adx", lambda p: (p.adx_period,)),
    **{name: _fixed("stoch", name, _stoch_values) for name in FAMILIES["stoch"].outputs},
    "obv": _fixed("obv", "obv", lambda p: ()),
    "vwap": _fixed("vwap", "vwap", lambda p: ()),
}
if set(_FIXED) != set(COLUMNS):  # a new Indicators field without a computation
    raise RuntimeError(f"indicator columns without a computation: {sorted(set(COLUMNS) ^ set(_FIXED))}")


@lru_cache(maxsize=4096)
def resolve(name: str, params: IndicatorParams) -> tuple[IndicatorSpec, str]:
    """The computation (spec) and output of column ``name``: a fixed column under ``params``'
    periods, or a parametrised name (``rsi_7``); IndicatorNameError for anything else."""
    fixed = _FIXED.get(name)
    return fixed(params) if fixed is not None else parse_column(name)


def check_columns(names: Iterable[str]) -> frozenset[str]:
    """``names`` as a set, each a fixed or a valid parametrised column ("close" allowed);
    IndicatorNameError naming the first bad one."""
    names = frozenset(names)
    for name in sorted(names):
        check_column(name)
    return names


def max_lookback(names: Iterable[str], params: IndicatorParams) -> int:
    """The longest warm-up in candles among the columns ``names`` ("close" has none)."""
    return max((lookback(resolve(n, params)[0]) for n in names if n != "close"), default=0)


class WindowTooShort(ValueError):
    """A column whose warm-up does not fit in the window; ``column`` names it."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


def check_window(names: Iterable[str], params: IndicatorParams) -> None:
    """Refuse columns whose warm-up does not fit in ``params.window`` (no value would ever be
    published): WindowTooShort naming the longest one and the window."""
    longest = max((n for n in names if n != "close"), key=lambda n: lookback(resolve(n, params)[0]), default=None)
    if longest is None:
        return
    needed = lookback(resolve(longest, params)[0])
    if params.window <= needed:
        raise WindowTooShort(
            f"indicator {longest} warms up over {needed} candles: the window of {params.window} candles "
            f"(TA_WINDOW) must exceed it",
            longest,
        )


def compute_columns(
    open_time: ArrayLike,
    open: ArrayLike,  # noqa: A002 - the OHLCV names are the contract
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    params: IndicatorParams,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Column]:
    """Indicators over the given candles (oldest first): float64 columns, NaN during warm-up.
    Row i depends on rows <= i only.

    ``only`` None: the fixed set, keyed exactly by the fields of ``protocol.Indicators``.
    Otherwise just these columns — fixed names and parametrised ones (``rsi_7``), e.g. what the
    enabled strategies declare — each identical to its column in any other result; unknown or
    badly parametrised names raise IndicatorNameError (a ValueError).
    """
    wanted = _wanted(only)
    times = epoch_ms(open_time)
    n = len(times)
    # No indicator here uses the open; it is checked so every caller passes whole candles.
    _float_column(open, "open", n)
    h = _float_column(high, "high", n)
    lo = _float_column(low, "low", n)
    c = _float_column(close, "close", n)
    v = _float_column(volume, "volume", n)
    if n and np.any(np.diff(times) <= 0):
        raise ValueError("open_time must be strictly increasing")
    return _compute(Ohlcv(times, h, lo, c, v), _plan(wanted, params))


def _wanted(only: Collection[str] | None) -> tuple[str, ...]:
    """The requested columns: fixed ones in ``COLUMNS`` order, then parametrised ones sorted
    (all fixed ones for None); "close" is not an indicator and is dropped; bad names refused."""
    if only is None:
        return COLUMNS
    if isinstance(only, str):
        raise TypeError("only must be a collection of column names, not one string")
    names = check_columns(only) - {"close"}
    return (*(name for name in COLUMNS if name in names), *sorted(names - set(COLUMNS)))


_Plan = tuple[tuple[str, IndicatorSpec, str], ...]


def _plan(wanted: tuple[str, ...], params: IndicatorParams) -> _Plan:
    """(column, spec, output) per wanted column: resolved once, used for every window."""
    return tuple((name, *resolve(name, params)) for name in wanted)


def _compute(x: Ohlcv, plan: _Plan) -> dict[str, Column]:
    """The planned columns over validated, contiguous float64 candles: each distinct spec once."""
    done: dict[IndicatorSpec, Mapping[str, Column]] = {}
    out: dict[str, Column] = {}
    for name, spec, output in plan:
        columns = done.get(spec)
        if columns is None:
            columns = done[spec] = compute_spec(x, spec)
        out[name] = columns[output]
    return out


def rolling_columns(
    open_time: ArrayLike,
    open: ArrayLike,  # noqa: A002
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    params: IndicatorParams,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Column]:
    """What the TA agent publishes for every row: row i is the last row of ``compute_columns``
    over the ``params.window`` candles ending at i (all of them while i < window).

    Differs from ``compute_columns`` over the whole series only in the last bits of the
    recursive indicators (EMA, RSI, ATR, ADX, MACD remember their start); use this where the
    numbers must equal the live agent's exactly (backtests, system tests). ``only``: as for
    ``compute_columns``.
    """
    head = compute_columns(open_time, open, high, low, close, volume, params, only=only)  # validates
    wanted = tuple(head)
    times = epoch_ms(open_time)
    h, lo, c, v = (np.ascontiguousarray(a, dtype=np.float64) for a in (high, low, close, volume))
    n, w = len(times), params.window
    # Rows before the first full window see the whole prefix; TA-Lib is causal, so the call
    # over the whole series already gives them.
    out = {name: head[name].copy() for name in wanted}
    if not wanted:
        return out
    plan = _plan(wanted, params)
    for i in range(w, n):
        window = slice(i - w + 1, i + 1)
        cols = _compute(Ohlcv(times[window], h[window], lo[window], c[window], v[window]), plan)
        for name in wanted:
            out[name][i] = cols[name][-1]
    return out


def to_decimal(value: float) -> Decimal | None:
    """A float as the Decimal that converts back to the identical float; None for NaN/inf."""
    number = float(value)
    if not math.isfinite(number):
        return None
    if abs(number) < _TINY:
        return Decimal(0)
    return Decimal(repr(number))


def indicators_at(columns: Mapping[str, Column], i: int) -> Indicators:
    """The fixed columns of row ``i`` of ``compute_columns`` output as a protocol message part
    (NaN or not computed -> None)."""
    return Indicators(**{name: to_decimal(columns[name][i]) for name in COLUMNS if name in columns})


def extra_at(columns: Mapping[str, Column], i: int) -> dict[str, Decimal]:
    """The parametrised columns of row ``i`` with a value (``IndicatorSnapshot.extra``): a
    column still warming up is left out, as InfluxDB leaves out a null field."""
    extra: dict[str, Decimal] = {}
    for name, values in columns.items():
        if name not in _FIXED:
            value = to_decimal(values[i])
            if value is not None:
                extra[name] = value
    return extra

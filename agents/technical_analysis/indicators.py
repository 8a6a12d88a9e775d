"""Indicators as pure columnar functions (no I/O): shared by the TA agent and the backtester.

See claudedocs/decisions/0005-shared-decision-code.md. Inputs and outputs are float64 numpy
columns (TA-Lib's own type); NaN means "still warming up". Everything TA-Lib provides is
computed by TA-Lib; only the derived Bollinger ratios and the session VWAP are computed here.

Session VWAP (TA-Lib has none): the session is the UTC calendar day of a candle's open time
(anchored at 00:00 UTC), the price is the typical price (high + low + close) / 3, and

    vwap[i] = sum(tp * volume) / sum(volume)   over the candles of i's session up to i.

It is NaN while the session's cumulative volume is still 0 (nothing traded, no price to
average), and for the candles of a session whose start lies before the first candle given
(a session seen only in part would be garbage, not a warm-up value). Timeframes of a day or
longer make every candle its own session, so the VWAP equals the candle's typical price.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

import numpy as np
import talib
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from talib import abstract

from protocol import Indicators

__all__ = [
    "COLUMNS",
    "IndicatorParams",
    "compute_columns",
    "epoch_ms",
    "indicators_at",
    "rolling_columns",
    "session_vwap",
    "to_decimal",
]

Column = NDArray[np.float64]

# The output keys: exactly the fields of protocol.Indicators, in their order.
COLUMNS: Final[tuple[str, ...]] = tuple(Indicators.model_fields)

_DAY_MS: Final = 86_400_000
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
        """TA-Lib's own warm-up (leading NaN rows) of each indicator function."""
        calls = {
            "RSI": {"timeperiod": self.rsi_period},
            "MACD": {"fastperiod": self.macd_fast, "slowperiod": self.macd_slow, "signalperiod": self.macd_signal},
            "BBANDS": {"timeperiod": self.bb_period, "nbdevup": self.bb_stddev, "nbdevdn": self.bb_stddev},
            "SMA": {"timeperiod": self.sma_slow},
            "EMA": {"timeperiod": self.ema_slow},
            "ATR": {"timeperiod": self.atr_period},
            "ADX": {"timeperiod": self.adx_period},
            "STOCH": {"fastk_period": self.stoch_fastk, "slowk_period": self.stoch_slowk, "slowd_period": self.stoch_slowd},
        }
        result = {}
        for name, parameters in calls.items():
            function = abstract.Function(name)
            function.parameters = parameters
            result[name] = int(function.lookback)
        return result

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


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, NaN where the denominator is 0 (flat bands) or NaN."""
    out = np.full_like(numerator, np.nan)
    np.divide(numerator, denominator, out=out, where=(denominator != 0) & ~np.isnan(denominator))
    return out


def session_vwap(times_ms: NDArray[np.int64], high: Column, low: Column, close: Column, volume: Column) -> Column:
    """Session VWAP anchored at 00:00 UTC (see the module docstring).

    Sums restart at every session instead of differencing one running total, so a session's
    values do not depend on the candles before it: the same day gives bit-identical VWAPs in a
    500-candle window and in a whole backtest.
    """
    n = len(close)
    vwap = np.full(n, np.nan)
    if n == 0:
        return vwap
    session = times_ms // _DAY_MS
    bounds = np.flatnonzero(np.r_[True, session[1:] != session[:-1], True])
    weighted = (high + low + close) / 3.0 * volume
    # One vectorised cumsum per session: a 15m series has one per 96 candles.
    for begin, end in zip(bounds[:-1], bounds[1:], strict=False):
        traded = np.cumsum(volume[begin:end])
        np.divide(np.cumsum(weighted[begin:end]), traded, out=vwap[begin:end], where=traded > 0)
    if times_ms[0] % _DAY_MS != 0:
        vwap[: bounds[1]] = np.nan  # the first session began before the data did
    return vwap


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
    """Every indicator over the given candles (oldest first): float64 columns keyed exactly by
    the fields of ``protocol.Indicators``, NaN during warm-up. Row i depends on rows <= i only.

    ``only``: compute just these columns (e.g. what one strategy reads, for a backtest); the
    result then holds only them, each identical to its column in the full result.
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
    return _compute(times, h, lo, c, v, params, wanted)


def _wanted(only: Collection[str] | None) -> tuple[str, ...]:
    """The requested columns in ``COLUMNS`` order (all of them for None); unknown names refused."""
    if only is None:
        return COLUMNS
    unknown = sorted(set(only) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown indicator columns {unknown}; known: {', '.join(COLUMNS)}")
    return tuple(name for name in COLUMNS if name in only)


def _macd(t: NDArray[np.int64], h: Column, lo: Column, c: Column, v: Column, p: IndicatorParams) -> dict[str, Column]:
    macd, signal, hist = talib.MACD(c, fastperiod=p.macd_fast, slowperiod=p.macd_slow, signalperiod=p.macd_signal)
    return {"macd": macd, "macd_signal": signal, "macd_hist": hist}


def _bbands(t: NDArray[np.int64], h: Column, lo: Column, c: Column, v: Column, p: IndicatorParams) -> dict[str, Column]:
    upper, middle, lower = talib.BBANDS(c, timeperiod=p.bb_period, nbdevup=p.bb_stddev, nbdevdn=p.bb_stddev, matype=0)
    return {
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "bb_percent_b": _ratio(c - lower, upper - lower),
        "bb_bandwidth": _ratio(upper - lower, middle),
    }


def _stoch(t: NDArray[np.int64], h: Column, lo: Column, c: Column, v: Column, p: IndicatorParams) -> dict[str, Column]:
    k, d = talib.STOCH(
        h, lo, c, fastk_period=p.stoch_fastk, slowk_period=p.stoch_slowk, slowk_matype=0,
        slowd_period=p.stoch_slowd, slowd_matype=0,
    )
    return {"stoch_k": k, "stoch_d": d}


def _single(name: str, compute: Callable[..., Column]) -> Callable[..., dict[str, Column]]:
    def group(t: NDArray[np.int64], h: Column, lo: Column, c: Column, v: Column, p: IndicatorParams) -> dict[str, Column]:
        return {name: compute(t, h, lo, c, v, p)}

    return group


# Each column's computation; columns of one TA-Lib call (MACD, BBANDS, STOCH) share it.
_GROUPS: Final[dict[str, Callable[..., dict[str, Column]]]] = {
    **dict.fromkeys(("macd", "macd_signal", "macd_hist"), _macd),
    **dict.fromkeys(("bb_upper", "bb_middle", "bb_lower", "bb_percent_b", "bb_bandwidth"), _bbands),
    **dict.fromkeys(("stoch_k", "stoch_d"), _stoch),
    "rsi": _single("rsi", lambda t, h, lo, c, v, p: talib.RSI(c, timeperiod=p.rsi_period)),
    "sma_fast": _single("sma_fast", lambda t, h, lo, c, v, p: talib.SMA(c, timeperiod=p.sma_fast)),
    "sma_slow": _single("sma_slow", lambda t, h, lo, c, v, p: talib.SMA(c, timeperiod=p.sma_slow)),
    "ema_fast": _single("ema_fast", lambda t, h, lo, c, v, p: talib.EMA(c, timeperiod=p.ema_fast)),
    "ema_slow": _single("ema_slow", lambda t, h, lo, c, v, p: talib.EMA(c, timeperiod=p.ema_slow)),
    "atr": _single("atr", lambda t, h, lo, c, v, p: talib.ATR(h, lo, c, timeperiod=p.atr_period)),
    "adx": _single("adx", lambda t, h, lo, c, v, p: talib.ADX(h, lo, c, timeperiod=p.adx_period)),
    "obv": _single("obv", lambda t, h, lo, c, v, p: talib.OBV(c, v)),
    "vwap": _single("vwap", lambda t, h, lo, c, v, p: session_vwap(t, h, lo, c, v)),
}
if set(_GROUPS) != set(COLUMNS):  # a new Indicators field without a computation
    raise RuntimeError(f"indicator columns without a computation: {sorted(set(COLUMNS) - set(_GROUPS))}")


def _compute(
    times: NDArray[np.int64], h: Column, lo: Column, c: Column, v: Column, p: IndicatorParams,
    wanted: tuple[str, ...] = COLUMNS,
) -> dict[str, Column]:
    """compute_columns on validated, contiguous float64 columns (``wanted`` in COLUMNS order)."""
    done: dict[str, Column] = {}
    for name in wanted:
        if name not in done:
            done.update(_GROUPS[name](times, h, lo, c, v, p))
    return {name: done[name] for name in wanted}


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
    for i in range(w, n):
        window = slice(i - w + 1, i + 1)
        cols = _compute(times[window], h[window], lo[window], c[window], v[window], params, wanted)
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


def indicators_at(columns: dict[str, Column], i: int) -> Indicators:
    """Row ``i`` of ``compute_columns`` output as a protocol message part (NaN -> None)."""
    return Indicators(**{name: to_decimal(columns[name][i]) for name in COLUMNS})

"""One computation per indicator family of ``protocol.indicators.FAMILIES`` (pure, TA-Lib).

Every family is computed here exactly once, by one function: the fixed set of
``protocol.Indicators`` (``rsi`` is the ``rsi`` family with ``TA_RSI_PERIOD``) and the
parametrised columns strategies declare (``rsi_7``) go through the same code (decision 0022).
Inputs are float64 columns (TA-Lib's own type); NaN means "still warming up". Everything TA-Lib
provides is computed by TA-Lib; only the derived Bollinger ratios, the Donchian midpoint and the
session VWAP are computed here.

Session VWAP (TA-Lib has none): the session is the UTC calendar day of a candle's open time
(anchored at 00:00 UTC), the price is the typical price (high + low + close) / 3, and

    vwap[i] = sum(tp * volume) / sum(volume)   over the candles of i's session up to i.

It is NaN while the session's cumulative volume is still 0 (nothing traded, no price to
average), and for the candles of a session whose start lies before the first candle given
(a session seen only in part would be garbage, not a warm-up value). Timeframes of a day or
longer make every candle its own session, so the VWAP equals the candle's typical price.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np
import talib
from numpy.typing import NDArray
from talib import abstract

from protocol.indicators import FAMILIES, IndicatorSpec

__all__ = ["Column", "Ohlcv", "compute_spec", "lookback", "session_vwap"]

Column = NDArray[np.float64]
_DAY_MS: Final = 86_400_000


class Ohlcv(NamedTuple):
    """Validated, contiguous float64 candle columns (open times in epoch ms)."""

    t: NDArray[np.int64]
    h: Column
    lo: Column
    c: Column
    v: Column


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


def _macd(x: Ohlcv, fast: int, slow: int, signal: int) -> tuple[Column, ...]:
    return tuple(talib.MACD(x.c, fastperiod=fast, slowperiod=slow, signalperiod=signal))


def _bbands(x: Ohlcv, period: int, stddev: float) -> tuple[Column, ...]:
    upper, middle, lower = talib.BBANDS(x.c, timeperiod=period, nbdevup=stddev, nbdevdn=stddev, matype=0)
    return upper, middle, lower, _ratio(x.c - lower, upper - lower), _ratio(upper - lower, middle)


def _stoch(x: Ohlcv, fastk: int, slowk: int, slowd: int) -> tuple[Column, ...]:
    k, d = talib.STOCH(x.h, x.lo, x.c, fastk_period=fastk, slowk_period=slowk, slowk_matype=0, slowd_period=slowd, slowd_matype=0)
    return k, d


def _donchian(x: Ohlcv, period: int) -> tuple[Column, ...]:
    upper, lower = talib.MAX(x.h, timeperiod=period), talib.MIN(x.lo, timeperiod=period)
    return upper, lower, (upper + lower) / 2.0


def _on_close(function: Callable[..., Column]) -> Callable[..., tuple[Column, ...]]:
    return lambda x, period: (function(x.c, timeperiod=period),)


def _on_hlc(function: Callable[..., Column]) -> Callable[..., tuple[Column, ...]]:
    return lambda x, period: (function(x.h, x.lo, x.c, timeperiod=period),)


@dataclass(frozen=True, slots=True)
class _Function:
    """A family's computation (outputs in the family's order) and the TA-Lib call whose
    lookback is its warm-up (None: no warm-up, the session VWAP)."""

    compute: Callable[..., tuple[Column, ...]]
    talib_name: str | None
    talib_args: Callable[..., dict[str, Any]]


def _period_args(period: int) -> dict[str, Any]:
    return {"timeperiod": period}


_FUNCTIONS: Final[dict[str, _Function]] = {
    "rsi": _Function(_on_close(talib.RSI), "RSI", _period_args),
    "sma": _Function(_on_close(talib.SMA), "SMA", _period_args),
    "ema": _Function(_on_close(talib.EMA), "EMA", _period_args),
    "wma": _Function(_on_close(talib.WMA), "WMA", _period_args),
    "roc": _Function(_on_close(talib.ROC), "ROC", _period_args),
    "mom": _Function(_on_close(talib.MOM), "MOM", _period_args),
    "atr": _Function(_on_hlc(talib.ATR), "ATR", _period_args),
    "natr": _Function(_on_hlc(talib.NATR), "NATR", _period_args),
    "adx": _Function(_on_hlc(talib.ADX), "ADX", _period_args),
    "cci": _Function(_on_hlc(talib.CCI), "CCI", _period_args),
    "willr": _Function(_on_hlc(talib.WILLR), "WILLR", _period_args),
    "mfi": _Function(lambda x, period: (talib.MFI(x.h, x.lo, x.c, x.v, timeperiod=period),), "MFI", _period_args),
    "macd": _Function(_macd, "MACD", lambda fast, slow, signal: {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}),
    "bb": _Function(_bbands, "BBANDS", lambda period, stddev: {"timeperiod": period, "nbdevup": stddev, "nbdevdn": stddev}),
    "stoch": _Function(_stoch, "STOCH", lambda fastk, slowk, slowd: {"fastk_period": fastk, "slowk_period": slowk, "slowd_period": slowd}),
    "donchian": _Function(_donchian, "MAX", _period_args),
    "obv": _Function(lambda x: (talib.OBV(x.c, x.v),), "OBV", dict),
    "vwap": _Function(lambda x: (session_vwap(x.t, x.h, x.lo, x.c, x.v),), None, dict),
}
if set(_FUNCTIONS) != set(FAMILIES):  # a family in the catalogue without a computation, or the reverse
    raise RuntimeError(f"indicator families and computations differ: {sorted(set(_FUNCTIONS) ^ set(FAMILIES))}")


def compute_spec(x: Ohlcv, spec: IndicatorSpec) -> Mapping[str, Column]:
    """Every output column of ``spec`` over the candles ``x``, keyed by output name."""
    outputs = _FUNCTIONS[spec.family].compute(x, **spec.params)
    return dict(zip(FAMILIES[spec.family].outputs, outputs, strict=True))


@lru_cache(maxsize=1024)
def lookback(spec: IndicatorSpec) -> int:
    """Leading NaN rows of ``spec`` (TA-Lib's own lookback): its warm-up in candles."""
    function = _FUNCTIONS[spec.family]
    if function.talib_name is None:
        return 0
    call = abstract.Function(function.talib_name)
    call.parameters = function.talib_args(**spec.params)
    return int(call.lookback)

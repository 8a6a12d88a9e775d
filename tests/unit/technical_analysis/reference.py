"""Reference values computed independently of agents.technical_analysis.indicators: TA-Lib called
directly, and the session VWAP by a plain Python loop. Shared by the unit and integration tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import talib
from numpy.typing import NDArray

from agents.technical_analysis.indicators import IndicatorParams, epoch_ms
from protocol import Candle

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Series:
    """Candles and their float64 columns (open time in epoch ms)."""

    candles: list[Candle]
    open_time: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]

    def columns(self, start: int = 0, end: int | None = None) -> tuple[NDArray, ...]:
        window = slice(start, end)
        return tuple(a[window] for a in (self.open_time, self.open, self.high, self.low, self.close, self.volume))


def series_of(candles: list[Candle]) -> Series:
    def col(name: str) -> NDArray[np.float64]:
        return np.array([float(getattr(c, name)) for c in candles])

    return Series(candles, epoch_ms([c.open_time for c in candles]), col("open"), col("high"), col("low"),
                  col("close"), col("volume"))


def talib_direct(s: Series, p: IndicatorParams) -> dict[str, np.ndarray]:
    """Every TA-Lib indicator the way a user would call it by hand (no VWAP: TA-Lib has none)."""
    h, lo, c, v = s.high, s.low, s.close, s.volume
    macd, signal, hist = talib.MACD(c, fastperiod=p.macd_fast, slowperiod=p.macd_slow, signalperiod=p.macd_signal)
    upper, middle, lower = talib.BBANDS(c, timeperiod=p.bb_period, nbdevup=p.bb_stddev, nbdevdn=p.bb_stddev)
    k, d = talib.STOCH(h, lo, c, fastk_period=p.stoch_fastk, slowk_period=p.stoch_slowk, slowd_period=p.stoch_slowd)
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(upper - lower != 0, (c - lower) / (upper - lower), np.nan)
        bandwidth = np.where(middle != 0, (upper - lower) / middle, np.nan)
    return {
        "rsi": talib.RSI(c, p.rsi_period), "macd": macd, "macd_signal": signal, "macd_hist": hist,
        "bb_upper": upper, "bb_middle": middle, "bb_lower": lower, "bb_percent_b": percent_b,
        "bb_bandwidth": bandwidth, "sma_fast": talib.SMA(c, p.sma_fast), "sma_slow": talib.SMA(c, p.sma_slow),
        "ema_fast": talib.EMA(c, p.ema_fast), "ema_slow": talib.EMA(c, p.ema_slow),
        "atr": talib.ATR(h, lo, c, p.atr_period), "adx": talib.ADX(h, lo, c, p.adx_period),
        "stoch_k": k, "stoch_d": d, "obv": talib.OBV(c, v),
    }


def vwap_by_hand(s: Series) -> np.ndarray:
    """Session VWAP, one candle at a time: sums restart at 00:00 UTC; null while nothing has
    traded in the session, and for a first session that began before the data."""
    out = np.full(len(s.close), np.nan)
    session, weighted, traded = None, 0.0, 0.0
    partial = len(s.open_time) > 0 and int(s.open_time[0]) % _DAY_MS != 0
    for i in range(len(s.close)):
        day = int(s.open_time[i]) // _DAY_MS
        if day != session:
            if session is not None:
                partial = False
            session, weighted, traded = day, 0.0, 0.0
        weighted += (s.high[i] + s.low[i] + s.close[i]) / 3.0 * s.volume[i]
        traded += s.volume[i]
        if traded > 0 and not partial:
            out[i] = weighted / traded
    return out


def reference(s: Series, p: IndicatorParams) -> dict[str, np.ndarray]:
    """All indicators over the whole series (TA-Lib directly plus the VWAP by hand)."""
    return talib_direct(s, p) | {"vwap": vwap_by_hand(s)}


def windowed_reference(s: Series, p: IndicatorParams) -> dict[str, np.ndarray]:
    """What the agent must publish: row i from the reference over the last ``p.window`` candles
    ending at i."""
    rows: dict[str, list[float]] = {}
    for i in range(len(s.close)):
        start = max(0, i + 1 - p.window)
        part = Series(s.candles[start : i + 1], *(a[start : i + 1] for a in s.columns()))
        for name, column in reference(part, p).items():
            rows.setdefault(name, []).append(float(column[-1]))
    return {name: np.array(values) for name, values in rows.items()}


def same(value: object, expected: float) -> bool:
    """A published Decimal (or None) equals the reference float exactly; NaN means None."""
    if math.isnan(expected):
        return value is None
    return value is not None and float(value) == expected  # type: ignore[arg-type]

"""Where a strategy can say anything but HOLD: vectorised row selection for the engine.

A live strategy publishes only changes of side (``is_change``). Calling ``decide`` on every
candle costs microseconds of Python per bar, while most candles of most strategies are a HOLD
that repeats the previous one. For the strategy kinds below a numpy mask marks every row where
``decide`` MAY return BUY or SELL; on every other row ``decide`` returns HOLD for sure. The
engine then calls the strategy's own ``decide`` on the marked rows, on the row after each of
them (where a HOLD may follow a BUY or SELL) and on the first row, and knows that every other
row repeats a HOLD and publishes nothing.

The masks are deliberately loose, so they do not restate the strategies' rules: a crossover
can only happen where the sign of the gap between the two lines changes (NaN, negative, zero
and positive are four different signs here), a threshold strategy can only trade where its
input lies beyond a threshold. Every traded Decision comes from ``decide`` itself, and the
engine refuses a run where ``decide`` returns BUY or SELL on a row the mask called certain
HOLD. Unit tests compare the result with calling ``decide`` on every candle (real BTC data and
random series with ties). A kind without a mask (``combined``) is decided on every candle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import (
    BollingerReversionStrategy,
    MacdCrossStrategy,
    RsiStrategy,
    SmaCrossStrategy,
    Strategy,
)
from agents.strategy.strategies.sma import sma

__all__ = ["rows_to_decide", "trade_mask"]

Mask = NDArray[np.bool_]


def _sign_changes(fast: NDArray[np.float64], slow: NDArray[np.float64]) -> Mask:
    """Rows whose gap fast - slow has another sign class than the row before (NaN counts as a
    class of its own); row 0 is marked (nothing before it)."""
    gap = fast - slow
    sign = np.where(np.isnan(gap), 2.0, np.sign(gap))
    return np.r_[True, sign[1:] != sign[:-1]]


def _beyond(value: NDArray[np.float64], low: float, high: float) -> Mask:
    with np.errstate(invalid="ignore"):
        return (value < low) | (value > high)


def _sma_cross(strategy: Any, history: IndicatorHistory) -> Mask:
    return _sign_changes(sma(history, strategy.params.fast), sma(history, strategy.params.slow))


def _macd_cross(strategy: Any, history: IndicatorHistory) -> Mask:
    return _sign_changes(history.col("macd"), history.col("macd_signal"))


def _rsi(strategy: Any, history: IndicatorHistory) -> Mask:
    return _beyond(history.col("rsi"), strategy.params.oversold, strategy.params.overbought)


def _bollinger(strategy: Any, history: IndicatorHistory) -> Mask:
    return _beyond(history.col("bb_percent_b"), strategy.params.lower, strategy.params.upper)


# Exact classes only: a subclass may decide differently, so it gets the per-candle loop.
_MASKS: Final[dict[type[Strategy], Callable[[Any, IndicatorHistory], Mask]]] = {
    SmaCrossStrategy: _sma_cross,
    MacdCrossStrategy: _macd_cross,
    RsiStrategy: _rsi,
    BollingerReversionStrategy: _bollinger,
}


def trade_mask(strategy: Strategy, history: IndicatorHistory) -> Mask | None:
    """True where ``decide`` may return BUY or SELL; None when the kind has no mask."""
    build = _MASKS.get(type(strategy))
    return None if build is None else build(strategy, history)


def rows_to_decide(mask: Mask, first: int) -> list[int]:
    """The rows >= ``first`` whose Decision can be a change of side: the first row, every
    marked row and the row after each (any other row is a HOLD after a HOLD)."""
    n = len(mask)
    chosen = mask.copy()
    chosen[1:] |= mask[:-1]
    chosen[:first] = False
    if first < n:
        chosen[first] = True
    return np.flatnonzero(chosen).tolist()

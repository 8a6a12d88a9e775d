"""Helpers shared by the built-in strategies, and the strategy API's names (re-exported from
``agents.strategy.api``, where ``Strategy``, ``Decision`` and ``StrategyParams`` are defined and
documented; decision 0021).

A strategy is a pure function of the indicator history up to and including row ``i``. It
never reads a later row (decision 0005; tests change future rows and check past decisions do
not move), never does I/O, and returns a ``Decision`` with a confidence in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from agents.strategy.api import (
    BUY,
    HOLD,
    SELL,
    Decision,
    Strategy,
    StrategyConfigError,
    StrategyParams,
    describe_validation_error,
)
from agents.strategy.history import IndicatorHistory

__all__ = [
    "BUY",
    "HOLD",
    "SELL",
    "Decision",
    "Strategy",
    "StrategyConfigError",
    "StrategyParams",
    "abs_spread",
    "beyond_rows",
    "clamp01",
    "cross_confidence",
    "cross_direction",
    "gap_direction",
    "describe_validation_error",
    "finite_or_none",
    "sign_change_rows",
    "window_sums",
]

_sum = np.add.reduce


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
    k = i - 1
    return gap_direction(fast.item(k) - slow.item(k), fast.item(i) - slow.item(i), fast, slow, i)


def gap_direction(before: float, after: float, fast: np.ndarray, slow: np.ndarray, i: int) -> float:
    """``cross_direction`` from the gaps fast - slow at rows i-1 (``before``) and i (``after``)
    a caller has already read; ``fast`` and ``slow`` are read only to walk back over exact
    zeros."""
    k = i - 1
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


def cross_confidence(
    fast: np.ndarray,
    slow: np.ndarray,
    i: int,
    window: int,
    *,
    spread: np.ndarray | None = None,
    spread_sums: np.ndarray | None = None,
) -> float:
    """Confidence of a crossover of ``fast`` over ``slow`` at row ``i``.

    With spread = fast - slow: 0.5 + 0.5 * min(1, |spread[i]| / mean |spread| over the
    ``window`` rows ending at i (NaN rows skipped)). A cross whose gap is already as wide as
    the recent typical gap scores 1.0, a bare touch 0.5. Reads rows i - window + 1 .. i only.

    Precomputed inputs a backtest passes to avoid redoing them on every crossing (the same
    floats, bit for bit): ``spread`` = ``abs_spread(fast, slow)`` and ``spread_sums`` =
    ``window_sums(spread, window)``.
    """
    lo = i - window + 1 if i >= window else 0
    gap = abs(fast.item(i) - slow.item(i)) if spread is None else spread.item(i)
    # The mean as ndarray.mean() computes it: numpy's pairwise sum divided by the count. A NaN
    # anywhere makes the sum NaN; only then are the NaN rows dropped.
    if spread_sums is not None and i >= window - 1:
        total, count = spread_sums.item(lo), window
    else:
        total, count = float(_sum(_recent(fast, slow, spread, lo, i))), i + 1 - lo
    if total != total:
        recent = _recent(fast, slow, spread, lo, i)
        recent = recent[~np.isnan(recent)]
        count = recent.size
        total = float(_sum(recent)) if count else 0.0
    typical = total / count if count else 0.0
    if not typical > 0.0:
        return 0.5
    return clamp01(0.5 + 0.5 * min(1.0, gap / typical))


def _recent(fast: np.ndarray, slow: np.ndarray, spread: np.ndarray | None, lo: int, i: int) -> np.ndarray:
    """|fast - slow| over rows lo..i."""
    return np.abs(fast[lo : i + 1] - slow[lo : i + 1]) if spread is None else spread[lo : i + 1]


def abs_spread(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """|fast - slow| per row (NaN while either is warming up): ``cross_confidence``'s input."""
    return np.abs(fast - slow)


def sign_change_rows(fast: np.ndarray, slow: np.ndarray) -> NDArray[np.bool_]:
    """Rows whose gap fast - slow has another sign class than the row before (NaN, negative,
    zero and positive are four classes); row 0 is marked (nothing before it). A crossover
    (``cross_direction`` != 0) can only happen on such a row."""
    gap = fast - slow
    sign = np.where(np.isnan(gap), 2.0, np.sign(gap))
    return np.r_[True, sign[1:] != sign[:-1]]


def beyond_rows(value: np.ndarray, low: float, high: float) -> NDArray[np.bool_]:
    """Rows where ``value`` is below ``low`` or above ``high`` (NaN is neither)."""
    with np.errstate(invalid="ignore"):
        return (value < low) | (value > high)


# numpy's pairwise summation: blocks of up to 128 values summed with 8 running partial sums.
_BLOCK = 128
_LANES = 8


def window_sums(values: np.ndarray, period: int) -> np.ndarray:
    """The sum of every window of ``period`` consecutive values (one per window start).

    Each window is summed in a fixed order that depends on nothing but its own values: the
    order of numpy's pairwise summation, so ``window_sums(x, p)[k]`` is bit for bit
    ``x[k : k + p].sum()`` (and ``sliding_window_view(x, p).sum(axis=1)``). Computed with
    one vectorised addition per window position instead of one reduction per window: the
    moving averages of a whole backtest cost a few array additions.
    """
    count = values.size - period + 1
    if count <= 0:
        return np.empty(0)
    # numpy starts a sum at +0.0 and adds the pairwise total to it.
    return _pairwise(values, 0, period, count) + 0.0


def _pairwise(x: np.ndarray, start: int, length: int, count: int) -> np.ndarray:
    """numpy's pairwise sum of x[k + start : k + start + length] for every k < count."""
    if length < _LANES:
        total = np.zeros(count)
        for offset in range(start, start + length):
            total += x[offset : offset + count]
        return total
    if length <= _BLOCK:
        lanes = [x[start + j : start + j + count].copy() for j in range(_LANES)]
        stop = start + length - length % _LANES
        for block in range(start + _LANES, stop, _LANES):
            for j in range(_LANES):
                lanes[j] += x[block + j : block + j + count]
        total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        for offset in range(stop, start + length):
            total += x[offset : offset + count]
        return total
    half = length // 2
    half -= half % _LANES
    return _pairwise(x, start, half, count) + _pairwise(x, start + half, length - half, count)

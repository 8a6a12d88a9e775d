"""SMA crossover on the close with the strategy's own periods (default 20/50): BUY when the
fast SMA crosses above the slow one between candles i-1 and i, SELL when it crosses below.

The averages are computed for the whole close column at once, once per history version
(``IndicatorHistory.derived``), and shared by every instance with the same period; the value at
row i only reads rows i - period + 1 .. i.

Why not TA-Lib's SMA: it keeps a running sum, so the last bits of the value at a candle depend
on where the column starts. The live agent's bounded history starts somewhere else than the
backtester's full column (and moves after a restart), and the same candle would get a slightly
different confidence — or, on a razor-thin cross, a different side. Each window is therefore
summed on its own, in numpy's pairwise order (``window_sums``): the same candle gives the same
float in any history.

Confidence: ``cross_confidence`` of fast - slow over ``strength_window`` candles.

Reads the close only (``indicator_columns`` is empty). Candidate rows for a backtest: where the
sign of fast - slow changes (``sign_change_rows``), the only rows a crossover can happen on.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from agents.strategy.api import (
    BUY,
    HOLD,
    SELL,
    Decision,
    IndicatorHistory,
    Strategy,
    StrategyParams,
)
from agents.strategy.strategies.base import (
    abs_spread,
    check_row,
    cross_confidence,
    finite_or_none,
    gap_direction,
    sign_change_rows,
    window_sums,
)

__all__ = ["SmaCrossParams", "SmaCrossStrategy", "sma"]


class SmaCrossParams(StrategyParams):
    """Fast and slow SMA periods, and the window of the confidence scale."""

    fast: int = Field(default=20, ge=2, le=2000)
    slow: int = Field(default=50, ge=3, le=5000)
    strength_window: int = Field(default=50, ge=1, le=5000)

    @model_validator(mode="after")
    def _ordered(self) -> SmaCrossParams:
        if not self.fast < self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


def sma(history: IndicatorHistory, period: int) -> np.ndarray:
    """Simple moving average of the close column (NaN for the first period - 1 rows), cached on
    the history until it changes; each value depends on its own window only."""

    def compute() -> np.ndarray:
        close = history.col("close")
        averages = np.full(close.size, np.nan)
        if close.size >= period:
            averages[period - 1 :] = window_sums(close, period) / period
        return averages

    return history.derived(("sma", period), compute)


class SmaCrossStrategy(Strategy):
    """Trend following on a fast/slow simple moving average crossover."""

    kind: ClassVar[str] = "sma_cross"
    Params = SmaCrossParams
    COLUMNS: ClassVar[frozenset[str] | None] = frozenset()  # its own SMAs of the close

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        fast, slow = self.params.fast, self.params.slow
        self._fast_name, self._slow_name = f"sma_{fast}", f"sma_{slow}"
        self._fast_prev, self._slow_prev = f"sma_{fast}_prev", f"sma_{slow}_prev"
        # Built once: the backtester decides on every bar, and most bars are a HOLD.
        self._hold_reason = {
            where: f"no SMA crossover (SMA{fast} {where} SMA{slow})" for where in ("above", "below", "on")
        }
        # printf-style: formats two floats faster than str.format, with the same text.
        self._crossed_above = f"SMA{fast} %.2f crossed above SMA{slow} %.2f"
        self._crossed_below = f"SMA{fast} %.2f crossed below SMA{slow} %.2f"
        self._cached: list[Any] | None = None

    @property
    def lookback(self) -> int:
        # The slow SMA at i-1 reads back to i-slow; the confidence window adds its own span.
        return self.params.slow + self.params.strength_window - 1

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(SmaCrossStrategy):
            return None
        columns = self._columns(history)
        return sign_change_rows(columns[2], columns[3])

    def _columns(self, history: IndicatorHistory) -> list[Any]:
        """[history, version, fast SMA, slow SMA, |fast - slow| and its window sums (None until
        a crossing needs them)], for this version of the history."""
        cached = self._cached
        if cached is None or cached[0] is not history or cached[1] != history.version:
            cached = [history, history.version, sma(history, self.params.fast), sma(history, self.params.slow), None, None]
            self._cached = cached
        return cached

    def _confidence(self, columns: list[Any], i: int) -> float:
        window = self.params.strength_window
        if columns[4] is None:  # once per history version, shared by every crossing a backtest meets
            columns[4] = abs_spread(columns[2], columns[3])
            columns[5] = window_sums(columns[4], window)
        return cross_confidence(columns[2], columns[3], i, window, spread=columns[4], spread_sums=columns[5])

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        if i < 0:
            check_row(history, i)
        columns = self._cached
        if columns is None or columns[0] is not history or columns[1] != history.version:
            columns = self._columns(history)
        fast, slow = columns[2], columns[3]
        now_f, now_s = fast.item(i), slow.item(i)
        if i == 0 or now_s != now_s:
            used = {self._fast_name: finite_or_none(now_f), self._slow_name: finite_or_none(now_s)}
            return self.warming(self._slow_name, used)
        prev_f, prev_s = fast.item(i - 1), slow.item(i - 1)
        after = now_f - now_s
        # The gaps just read, not read again (a backtest decides every crossing and the row after).
        direction = gap_direction(prev_f - prev_s, after, fast, slow, i)
        if direction != direction:
            used = {
                self._fast_name: now_f, self._slow_name: now_s, self._fast_prev: finite_or_none(prev_f), self._slow_prev: None,
            }
            return self.warming(f"{self._slow_name} at the previous candle", used)
        used = {self._fast_name: now_f, self._slow_name: now_s, self._fast_prev: prev_f, self._slow_prev: prev_s}
        if direction > 0.0:
            return Decision(BUY, self._confidence(columns, i), self._crossed_above % (now_f, now_s), used)
        if direction < 0.0:
            return Decision(SELL, self._confidence(columns, i), self._crossed_below % (now_f, now_s), used)
        return Decision(HOLD, 0.0, self._hold_reason["above" if after > 0.0 else "below" if after < 0.0 else "on"], used)

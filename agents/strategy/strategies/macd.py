"""MACD crossover: BUY when the MACD line crosses above its signal line between candles i-1
and i, SELL when it crosses below; HOLD otherwise.

"Crosses above" means macd - signal changed sign from negative to positive (``cross_direction``;
an exact 0 belongs to no side, so touching the signal line and turning back is not a cross).

Confidence: ``cross_confidence`` of the spread macd - signal over ``strength_window`` candles:
0.5 + 0.5 * min(1, |spread at i| / mean |spread| over the window).

Reads ``macd`` and ``macd_signal``. Candidate rows for a backtest: where the sign of
macd - signal changes (``sign_change_rows``), the only rows a crossover can happen on.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

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
    cross_direction,
    finite_or_none,
    sign_change_rows,
    window_sums,
)

__all__ = ["MacdCrossParams", "MacdCrossStrategy"]

_COLUMNS = frozenset({"macd", "macd_signal"})
_SPREAD_KEY = ("abs_spread", "macd", "macd_signal")
_HOLD_REASON = {where: f"no MACD crossover (MACD {where} signal)" for where in ("above", "below", "on")}


class MacdCrossParams(StrategyParams):
    """How many candles define the typical MACD-signal gap for the confidence."""

    strength_window: int = Field(default=26, ge=1, le=5000)


class MacdCrossStrategy(Strategy):
    """Trend following on MACD / signal line crossovers."""

    kind: ClassVar[str] = "macd_cross"
    Params = MacdCrossParams
    COLUMNS = _COLUMNS

    @property
    def lookback(self) -> int:
        return max(1, self.params.strength_window - 1)

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(MacdCrossStrategy):
            return None
        return sign_change_rows(history.col("macd"), history.col("macd_signal"))

    def _confidence(self, history: IndicatorHistory, macd: np.ndarray, signal: np.ndarray, i: int) -> float:
        # |macd - signal| and its window sums once per history version, shared by every
        # crossing a backtest meets.
        window = self.params.strength_window
        spread = history.derived(_SPREAD_KEY, lambda: abs_spread(macd, signal))
        sums = history.derived((*_SPREAD_KEY, window), lambda: window_sums(spread, window))
        return cross_confidence(macd, signal, i, window, spread=spread, spread_sums=sums)

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        check_row(history, i)
        macd, signal = history.col("macd"), history.col("macd_signal")
        now_m, now_s = macd.item(i), signal.item(i)
        if i == 0:
            return self.warming("previous candle", {"macd": finite_or_none(now_m), "macd_signal": finite_or_none(now_s)})
        prev_m, prev_s = macd.item(i - 1), signal.item(i - 1)
        direction = cross_direction(macd, signal, i)
        if direction != direction:
            used = {
                "macd": finite_or_none(now_m),
                "macd_signal": finite_or_none(now_s),
                "macd_prev": finite_or_none(prev_m),
                "macd_signal_prev": finite_or_none(prev_s),
            }
            return self.warming("macd/macd_signal", used)
        used = {"macd": now_m, "macd_signal": now_s, "macd_prev": prev_m, "macd_signal_prev": prev_s}
        if direction > 0.0:
            confidence = self._confidence(history, macd, signal, i)
            return Decision(BUY, confidence, f"MACD {now_m:.4g} crossed above signal {now_s:.4g}", used)
        if direction < 0.0:
            confidence = self._confidence(history, macd, signal, i)
            return Decision(SELL, confidence, f"MACD {now_m:.4g} crossed below signal {now_s:.4g}", used)
        after = now_m - now_s
        return Decision(HOLD, 0.0, _HOLD_REASON["above" if after > 0.0 else "below" if after < 0.0 else "on"], used)

"""Bollinger mean reversion: BUY when %B falls below ``lower`` (close under the lower band for
the default 0), SELL when it rises above ``upper`` (over the upper band for the default 1).

Confidence: BUY = 0.5 + (lower - %B), SELL = 0.5 + (%B - upper), capped at 1: 0.5 on the band,
1.0 half a band width beyond it.

Reads ``bb_percent_b``, ``bb_lower`` and ``bb_upper`` (and the close). Candidate rows for a
backtest: where %B lies beyond a threshold.
"""

from __future__ import annotations

from typing import ClassVar

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
    beyond_rows,
    check_row,
    clamp01,
    finite_or_none,
)

__all__ = ["BollingerParams", "BollingerReversionStrategy"]

_COLUMNS = frozenset({"bb_percent_b", "bb_lower", "bb_upper"})


class BollingerParams(StrategyParams):
    """%B thresholds (0 = lower band, 1 = upper band)."""

    lower: float = Field(default=0.0, ge=-5, le=5, description="BUY when %B is below this")
    upper: float = Field(default=1.0, ge=-5, le=5, description="SELL when %B is above this")

    @model_validator(mode="after")
    def _ordered(self) -> BollingerParams:
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower:g}) must be below upper ({self.upper:g})")
        return self


class BollingerReversionStrategy(Strategy):
    """Fade closes outside the Bollinger bands."""

    kind: ClassVar[str] = "bollinger_reversion"
    Params = BollingerParams
    COLUMNS = _COLUMNS

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(BollingerReversionStrategy):
            return None
        return beyond_rows(history.col("bb_percent_b"), self.params.lower, self.params.upper)

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        check_row(history, i)
        percent_b = history.col("bb_percent_b").item(i)
        used = {
            "bb_percent_b": finite_or_none(percent_b),
            "bb_lower": finite_or_none(history.col("bb_lower").item(i)),
            "bb_upper": finite_or_none(history.col("bb_upper").item(i)),
            "close": history.col("close").item(i),
        }
        if percent_b != percent_b:
            return self.warming("bb_percent_b", used)
        low, high = self.params.lower, self.params.upper
        if percent_b < low:
            return Decision(BUY, clamp01(0.5 + (low - percent_b)), f"%B {percent_b:.3f} < {low:g} (below lower band)", used)
        if percent_b > high:
            return Decision(SELL, clamp01(0.5 + (percent_b - high)), f"%B {percent_b:.3f} > {high:g} (above upper band)", used)
        return Decision(HOLD, 0.0, f"%B {percent_b:.3f} within {low:g}..{high:g}", used)

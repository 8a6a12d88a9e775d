"""Bollinger mean reversion: BUY when %B falls below ``lower`` (close under the lower band for
the default 0), SELL when it rises above ``upper`` (over the upper band for the default 1).

Confidence: BUY = 0.5 + (lower - %B), SELL = 0.5 + (%B - upper), capped at 1: 0.5 on the band,
1.0 half a band width beyond it.

Reads ``bb_percent_b``, ``bb_lower`` and ``bb_upper`` (the analysis agent's ``TA_BB_*``), or
with ``period`` and ``stddev`` set those bands (``bb_percent_b_10_2.5``, ...; decision 0022), and
the close. Candidate rows for a backtest: where %B lies beyond a threshold.
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
    indicator,
)
from agents.strategy.strategies.base import (
    beyond_rows,
    check_row,
    clamp01,
    finite_or_none,
)

__all__ = ["BollingerParams", "BollingerReversionStrategy"]

_OUTPUTS = ("bb_percent_b", "bb_lower", "bb_upper")


class BollingerParams(StrategyParams):
    """%B thresholds (0 = lower band, 1 = upper band), and optionally the bands' own period and
    width (both or none: none reads the agent's fixed bands)."""

    lower: float = Field(default=0.0, ge=-5, le=5, description="BUY when %B is below this")
    upper: float = Field(default=1.0, ge=-5, le=5, description="SELL when %B is above this")
    period: int | None = Field(default=None, ge=2, le=10_000, description="Bollinger period (with stddev)")
    stddev: float | None = Field(default=None, ge=0.01, le=10, description="band width in standard deviations (with period)")

    @model_validator(mode="after")
    def _ordered(self) -> BollingerParams:
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower:g}) must be below upper ({self.upper:g})")
        if (self.period is None) != (self.stddev is None):
            raise ValueError("give period and stddev together or neither")
        return self


class BollingerReversionStrategy(Strategy):
    """Fade closes outside the Bollinger bands."""

    kind: ClassVar[str] = "bollinger_reversion"
    Params = BollingerParams
    COLUMNS = frozenset(_OUTPUTS)  # with a period: indicator_columns names those bands

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        p = self.params
        if p.period is None:
            self._percent_b, self._lower, self._upper = _OUTPUTS
        else:
            self._percent_b, self._lower, self._upper = (
                indicator("bb", output, period=p.period, stddev=p.stddev) for output in _OUTPUTS
            )

    @property
    def indicator_columns(self) -> frozenset[str]:
        return frozenset({self._percent_b, self._lower, self._upper})

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(BollingerReversionStrategy):
            return None
        return beyond_rows(history.col(self._percent_b), self.params.lower, self.params.upper)

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        check_row(history, i)
        percent_b = history.col(self._percent_b).item(i)
        used = {
            self._percent_b: finite_or_none(percent_b),
            self._lower: finite_or_none(history.col(self._lower).item(i)),
            self._upper: finite_or_none(history.col(self._upper).item(i)),
            "close": history.col("close").item(i),
        }
        if percent_b != percent_b:
            return self.warming(self._percent_b, used)
        low, high = self.params.lower, self.params.upper
        if percent_b < low:
            return Decision(BUY, clamp01(0.5 + (low - percent_b)), f"%B {percent_b:.3f} < {low:g} (below lower band)", used)
        if percent_b > high:
            return Decision(SELL, clamp01(0.5 + (percent_b - high)), f"%B {percent_b:.3f} > {high:g} (above upper band)", used)
        return Decision(HOLD, 0.0, f"%B {percent_b:.3f} within {low:g}..{high:g}", used)

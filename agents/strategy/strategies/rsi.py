"""RSI thresholds: BUY when RSI is below ``oversold``, SELL when it is above ``overbought``.

Presets: aggressive 35/65, default 30/70, conservative 25/75; explicit ``oversold`` /
``overbought`` override the preset's values.

Confidence: BUY = 0.5 + 0.5 * (oversold - rsi) / oversold, i.e. 0.5 at the threshold and 1.0 at
RSI 0; SELL = 0.5 + 0.5 * (rsi - overbought) / (100 - overbought), 1.0 at RSI 100; HOLD 0.

Reads ``rsi`` (the technical analysis agent's RSI, ``TA_RSI_PERIOD``), or with ``period`` set
the RSI of that period (``period = 7`` declares and reads ``rsi_7``; decision 0022), so RSI 7
and RSI 14 instances run side by side. Candidate rows for a backtest: where the RSI lies beyond
a threshold.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

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
)

__all__ = ["RSI_PRESETS", "RsiParams", "RsiStrategy"]

RSI_PRESETS: Final[dict[str, tuple[float, float]]] = {
    "aggressive": (35.0, 65.0),
    "default": (30.0, 70.0),
    "conservative": (25.0, 75.0),
}


class RsiParams(StrategyParams):
    """RSI thresholds; ``preset`` fills whichever of oversold/overbought is not given."""

    preset: Literal["aggressive", "default", "conservative"] = "default"
    period: int | None = Field(
        default=None, ge=2, le=10_000, description="RSI period (reads rsi_<period>); unset: the agent's rsi (TA_RSI_PERIOD)"
    )
    oversold: float = Field(gt=0, lt=100, description="BUY below this RSI")
    overbought: float = Field(gt=0, lt=100, description="SELL above this RSI")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "default")
        if preset not in RSI_PRESETS:
            return data  # the Literal check reports it, listing the choices
        oversold, overbought = RSI_PRESETS[preset]
        return {"oversold": oversold, "overbought": overbought, **data}

    @model_validator(mode="after")
    def _ordered(self) -> RsiParams:
        if not self.oversold < self.overbought:
            raise ValueError(f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})")
        return self


class RsiStrategy(Strategy):
    """Mean reversion on RSI extremes."""

    kind: ClassVar[str] = "rsi"
    Params = RsiParams
    COLUMNS = frozenset({"rsi"})  # with a period: indicator_columns says rsi_<period>

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        low, high = self.params.oversold, self.params.overbought
        period = self.params.period
        self._column = "rsi" if period is None else indicator("rsi", period=period)
        # Built once: the backtester decides on every bar.
        self._buy_text, self._sell_text = f" < {low:g} (oversold)", f" > {high:g} (overbought)"
        self._hold_text = f" within {low:g}..{high:g}"

    @property
    def indicator_columns(self) -> frozenset[str]:
        return frozenset({self._column})

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(RsiStrategy):
            return None
        return beyond_rows(history.col(self._column), self.params.oversold, self.params.overbought)

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        check_row(history, i)
        column = self._column
        rsi = history.col(column).item(i)
        if rsi != rsi:
            return self.warming(column, {column: None})
        low, high = self.params.oversold, self.params.overbought
        used = {column: rsi}
        if rsi < low:
            return Decision(BUY, clamp01(0.5 + 0.5 * (low - rsi) / low), f"RSI {rsi:.2f}{self._buy_text}", used)
        if rsi > high:
            confidence = clamp01(0.5 + 0.5 * (rsi - high) / (100.0 - high))
            return Decision(SELL, confidence, f"RSI {rsi:.2f}{self._sell_text}", used)
        return Decision(HOLD, 0.0, f"RSI {rsi:.2f}{self._hold_text}", used)

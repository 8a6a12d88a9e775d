"""MACD crossover: BUY when the MACD line crosses above its signal line between candles i-1
and i, SELL when it crosses below; HOLD otherwise.

"Crosses above" means macd - signal changed sign from negative to positive (``cross_direction``;
an exact 0 belongs to no side, so touching the signal line and turning back is not a cross).

Confidence: ``cross_confidence`` of the spread macd - signal over ``strength_window`` candles:
0.5 + 0.5 * min(1, |spread at i| / mean |spread| over the window).

Reads ``macd`` and ``macd_signal`` (the analysis agent's ``TA_MACD_*`` periods), or with
``fast``, ``slow`` and ``signal`` set that MACD (``macd_5_35_5`` and ``macd_signal_5_35_5``;
decision 0022). Candidate rows for a backtest: where the sign of macd - signal changes
(``sign_change_rows``), the only rows a crossover can happen on.
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
    abs_spread,
    check_row,
    cross_confidence,
    cross_direction,
    finite_or_none,
    sign_change_rows,
    window_sums,
)

__all__ = ["MacdCrossParams", "MacdCrossStrategy"]

_HOLD_REASON = {where: f"no MACD crossover (MACD {where} signal)" for where in ("above", "below", "on")}


class MacdCrossParams(StrategyParams):
    """How many candles define the typical MACD-signal gap for the confidence, and optionally
    the MACD's own periods (all three or none: none reads the agent's fixed ``macd``)."""

    strength_window: int = Field(default=26, ge=1, le=5000)
    fast: int | None = Field(default=None, ge=2, le=10_000, description="MACD fast EMA period (with slow and signal)")
    slow: int | None = Field(default=None, ge=2, le=10_000, description="MACD slow EMA period (with fast and signal)")
    signal: int | None = Field(default=None, ge=1, le=10_000, description="MACD signal period (with fast and slow)")

    @model_validator(mode="after")
    def _all_or_none(self) -> MacdCrossParams:
        given = [name for name in ("fast", "slow", "signal") if getattr(self, name) is not None]
        if given and len(given) != 3:
            raise ValueError(f"give fast, slow and signal together or none of them (got {', '.join(given)})")
        if given and not self.fast < self.slow:  # type: ignore[operator]
            raise ValueError(f"fast ({self.fast}) must be < slow ({self.slow})")
        return self


class MacdCrossStrategy(Strategy):
    """Trend following on MACD / signal line crossovers."""

    kind: ClassVar[str] = "macd_cross"
    Params = MacdCrossParams
    COLUMNS = frozenset({"macd", "macd_signal"})  # with periods: indicator_columns names them

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        p = self.params
        if p.fast is None:
            self._macd, self._signal = "macd", "macd_signal"
        else:
            periods = {"fast": p.fast, "slow": p.slow, "signal": p.signal}
            self._macd, self._signal = indicator("macd", "macd", **periods), indicator("macd", "macd_signal", **periods)
        self._macd_prev, self._signal_prev = f"{self._macd}_prev", f"{self._signal}_prev"
        self._spread_key = ("abs_spread", self._macd, self._signal)

    @property
    def indicator_columns(self) -> frozenset[str]:
        return frozenset({self._macd, self._signal})

    @property
    def lookback(self) -> int:
        return max(1, self.params.strength_window - 1)

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(MacdCrossStrategy):
            return None
        return sign_change_rows(history.col(self._macd), history.col(self._signal))

    def _confidence(self, history: IndicatorHistory, macd: np.ndarray, signal: np.ndarray, i: int) -> float:
        # |macd - signal| and its window sums once per history version, shared by every
        # crossing a backtest meets.
        window = self.params.strength_window
        spread = history.derived(self._spread_key, lambda: abs_spread(macd, signal))
        sums = history.derived((*self._spread_key, window), lambda: window_sums(spread, window))
        return cross_confidence(macd, signal, i, window, spread=spread, spread_sums=sums)

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        check_row(history, i)
        m_name, s_name = self._macd, self._signal
        macd, signal = history.col(m_name), history.col(s_name)
        now_m, now_s = macd.item(i), signal.item(i)
        if i == 0:
            return self.warming("previous candle", {m_name: finite_or_none(now_m), s_name: finite_or_none(now_s)})
        prev_m, prev_s = macd.item(i - 1), signal.item(i - 1)
        direction = cross_direction(macd, signal, i)
        if direction != direction:
            used = {
                m_name: finite_or_none(now_m),
                s_name: finite_or_none(now_s),
                self._macd_prev: finite_or_none(prev_m),
                self._signal_prev: finite_or_none(prev_s),
            }
            return self.warming(f"{m_name}/{s_name}", used)
        used = {m_name: now_m, s_name: now_s, self._macd_prev: prev_m, self._signal_prev: prev_s}
        if direction > 0.0:
            confidence = self._confidence(history, macd, signal, i)
            return Decision(BUY, confidence, f"MACD {now_m:.4g} crossed above signal {now_s:.4g}", used)
        if direction < 0.0:
            confidence = self._confidence(history, macd, signal, i)
            return Decision(SELL, confidence, f"MACD {now_m:.4g} crossed below signal {now_s:.4g}", used)
        after = now_m - now_s
        return Decision(HOLD, 0.0, _HOLD_REASON["above" if after > 0.0 else "below" if after < 0.0 else "on"], used)

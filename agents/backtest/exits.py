"""The backtester's protective exits: from an entry, the first held candle whose exit triggers.

The rules are the risk manager's (``agents/risk_manager/exits.py``, decision 0023); this module
only walks the window's candles with them and supplies the entry's ATR for ``stop_loss_atr``.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from agents.backtest.data import Window
from agents.risk_manager.exits import Bar, ExitState, ExitTrigger, enter, first_exit
from agents.technical_analysis.indicators import IndicatorParams, compute_columns
from protocol.exits import ExitSettings

__all__ = ["ExitWatch"]


class ExitWatch:
    """The protective exits of a run: from an entry, the first held candle that exits."""

    def __init__(self, exits: ExitSettings, window: Window, params: IndicatorParams) -> None:
        self.exits = exits
        self.candles = window.bars.candles
        self.atr: NDArray[np.float64] | None = None
        if exits.stop_loss_atr is not None:
            bars = window.bars
            # The ATR column as the TA agent stores it (the strategy may not read ATR itself).
            columns = compute_columns(bars.open_time, bars.open, bars.high, bars.low, bars.close, bars.volume, params, only=("atr",))
            self.atr = columns["atr"]

    def bar(self, row: int) -> Bar:
        candle = self.candles[row]
        return Bar(candle.open, candle.high, candle.low, candle.close)

    def entry_state(self, price: Decimal, signal_row: int) -> ExitState:
        """A position filled at ``price`` on the signal of ``signal_row``; the ATR is that candle's,
        as a Decimal of the float the TA agent publishes (``Decimal(repr(float))``)."""
        atr = None
        if self.atr is not None:
            value = float(self.atr[signal_row])
            atr = Decimal(repr(value)) if np.isfinite(value) and value > 0 else None
        return enter(price, atr)

    def scan(self, start: int, state: ExitState) -> tuple[int, ExitTrigger, ExitState] | None:
        """The first row >= ``start`` whose candle exits, the trigger, and the state before it."""
        index, hit, before = first_exit(self.exits, state, (self.bar(row) for row in range(start, len(self.candles))))
        if index is None or hit is None:
            return None
        return start + index, hit, before

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

__all__ = ["AtrColumn", "ExitWatch"]


class AtrColumn:
    """The ATR of each window row as the TA agent stores it (the strategy may not read ATR
    itself), and as the risk manager reads it: a Decimal of the published float
    (``Decimal(repr(float))``), None while warming up. Used by ATR stops and ATR sizing."""

    def __init__(self, window: Window, params: IndicatorParams) -> None:
        bars = window.bars
        self.values: NDArray[np.float64] = compute_columns(
            bars.open_time, bars.open, bars.high, bars.low, bars.close, bars.volume, params, only=("atr",)
        )["atr"]

    def at(self, row: int) -> Decimal | None:
        value = float(self.values[row])
        return Decimal(repr(value)) if np.isfinite(value) and value > 0 else None


class ExitWatch:
    """The protective exits of a run: from an entry, the first held candle that exits."""

    def __init__(self, exits: ExitSettings, window: Window, params: IndicatorParams) -> None:
        self.exits = exits
        self.candles = window.bars.candles
        self.atr = AtrColumn(window, params) if exits.stop_loss_atr is not None else None

    def bar(self, row: int) -> Bar:
        candle = self.candles[row]
        return Bar(candle.open, candle.high, candle.low, candle.close)

    def entry_state(self, price: Decimal, signal_row: int) -> ExitState:
        """A position filled at ``price`` on the signal of ``signal_row``; the ATR is that candle's."""
        return enter(price, self.atr.at(signal_row) if self.atr is not None else None)

    def scan(self, start: int, state: ExitState) -> tuple[int, ExitTrigger, ExitState] | None:
        """The first row >= ``start`` whose candle exits, the trigger, and the state before it."""
        index, hit, before = first_exit(self.exits, state, (self.bar(row) for row in range(start, len(self.candles))))
        if index is None or hit is None:
            return None
        return start + index, hit, before

"""Protective exit rules: does this candle close the position, why, and at which price. Pure.

One module for the live risk path and the backtester (decision 0005), so both exit the same
trade on the same candle at the same price (decision 0023).

The position is described by ``ExitState``: the entry price, the high-water mark (the highest
high of the candles held *before* the current one, at least the entry price) and the number of
candles held before the current one. The first candle checked is the one after the entry
signal's candle: the entry fills at its open, so all of it is traded while holding.

Inside one candle the path of the price is unknown, so the order is the conservative one:

1. the open: an open at or below the stop level (a gap through the stop) exits at the OPEN; an
   open at or above the take-profit level exits at the OPEN (a gap in the trader's favour);
2. a low at or below the stop level exits AT the stop level (the stop is assumed hit before
   any take-profit in the same candle);
3. a high at or above the take-profit level exits AT the take-profit level;
4. the time stop exits at the CLOSE of the ``time_stop``-th candle held.

The stop level is the higher of the stop-loss and the trailing stop (the one the falling price
reaches first); on a tie it is reported as STOP_LOSS. The trailing level uses the high-water
mark of earlier candles only: whether the current candle's high came before its low is unknown.
Every exit price lies within the candle's [low, high]; slippage is applied by the fill model
(``market_fill``) on top, against the trader, like any market order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from protocol.exits import ExitReason, ExitSettings

__all__ = ["Bar", "ExitState", "ExitTrigger", "advance", "check_exit", "enter", "first_exit", "stop_level"]

_ONE = Decimal(1)


class Bar(NamedTuple):
    """The candle being checked."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True, slots=True)
class ExitState:
    """An open long position as the exit rules see it, before the candle being checked."""

    entry_price: Decimal
    high_water: Decimal
    candles_held: int = 0
    # ATR of the entry signal's candle; needed only for ``stop_loss_atr``.
    entry_atr: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitTrigger:
    """An exit: why, the price it fills at before slippage, and the level that was crossed."""

    reason: ExitReason
    price: Decimal
    level: Decimal | None


def enter(entry_price: Decimal, entry_atr: Decimal | None = None) -> ExitState:
    """The state of a position just opened at ``entry_price``."""
    return ExitState(entry_price=entry_price, high_water=entry_price, candles_held=0, entry_atr=entry_atr)


def advance(state: ExitState, bar: Bar) -> ExitState:
    """The state after holding through ``bar`` without an exit."""
    high = bar.high if bar.high > state.high_water else state.high_water
    return ExitState(state.entry_price, high, state.candles_held + 1, state.entry_atr)


def stop_level(settings: ExitSettings, state: ExitState) -> tuple[Decimal, ExitReason] | None:
    """The price at which the position stops out (the higher of stop-loss and trailing stop)."""
    levels: list[tuple[Decimal, ExitReason]] = []
    if settings.stop_loss is not None:
        levels.append((state.entry_price * (_ONE - settings.stop_loss), ExitReason.STOP_LOSS))
    elif settings.stop_loss_atr is not None and state.entry_atr is not None:
        levels.append((state.entry_price - settings.stop_loss_atr * state.entry_atr, ExitReason.STOP_LOSS))
    if settings.trailing_stop is not None:
        levels.append((state.high_water * (_ONE - settings.trailing_stop), ExitReason.TRAILING_STOP))
    if not levels:
        return None
    # Highest level first; on a tie STOP_LOSS (listed first) wins: max keeps the first maximum.
    return max(levels, key=lambda pair: pair[0])


def check_exit(settings: ExitSettings, state: ExitState, bar: Bar) -> ExitTrigger | None:
    """The exit ``bar`` triggers for a position in ``state``, or None (see the module docstring)."""
    stop = stop_level(settings, state)
    target = state.entry_price * (_ONE + settings.take_profit) if settings.take_profit is not None else None
    if stop is not None and bar.open <= stop[0]:
        return ExitTrigger(stop[1], bar.open, stop[0])
    if target is not None and bar.open >= target:
        return ExitTrigger(ExitReason.TAKE_PROFIT, bar.open, target)
    if stop is not None and bar.low <= stop[0]:
        return ExitTrigger(stop[1], stop[0], stop[0])
    if target is not None and bar.high >= target:
        return ExitTrigger(ExitReason.TAKE_PROFIT, target, target)
    if settings.time_stop is not None and state.candles_held + 1 >= settings.time_stop:
        return ExitTrigger(ExitReason.TIME_STOP, bar.close, None)
    return None


def first_exit(
    settings: ExitSettings, state: ExitState, bars: Iterable[Bar]
) -> tuple[int | None, ExitTrigger | None, ExitState]:
    """Walk the held ``bars`` (oldest first, the candles after ``state``): the index of the
    first one that exits, its trigger and the state before it; or (None, None, the state after
    the last bar). The live risk manager and the backtester both walk positions with this."""
    for index, bar in enumerate(bars):
        hit = check_exit(settings, state, bar)
        if hit is not None:
            return index, hit, state
        state = advance(state, bar)
    return None, None, state

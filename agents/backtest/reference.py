"""An independent reference: the same long-only SMA crossover run by backtesting.py.

Development only (``backtesting`` is in the ``dev`` extra): the agreement test and
scripts/bench_backtest.py compare tradebus's engine with it on the same candles.

How the two runs are made comparable (the only adjustments):

- the strategy is backtesting.py's documentation example (``crossover`` of two ``SMA``s from
  ``backtesting.test``, pandas rolling means), made long-only like tradebus: buy when the fast
  SMA crosses above the slow one while flat, close the position when it crosses below;
- fills at the next bar's open (``trade_on_close=False``), one position at a time;
- commission = tradebus's taker fee (charged on entry and exit notional, like the paper
  exchange), no spread: tradebus's slippage must be set to 0 for the comparison, because
  backtesting.py applies its spread on entry only;
- all-in sizing (``buy()`` with its default size, the whole available cash);
- BTC is traded in fractions through ``FractionalBacktest(fractional_unit=lot_step)``: it
  trades whole units of ``lot_step`` BTC, exactly the lot rounding of tradebus's sizing;
- tradebus rounds fill prices to the market tick; the comparison passes a tick finer than the
  data's decimals, so no price is moved.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agents.backtest.data import Bars

__all__ = ["ReferenceRun", "bars_frame", "run_reference_sma"]


@dataclass(frozen=True, slots=True)
class ReferenceRun:
    """backtesting.py's trades (entry/exit bar indices, exit None when still open) and final
    equity."""

    entries: list[int]
    exits: list[int | None]
    final_equity: float
    stats: Any


def bars_frame(bars: Bars) -> pd.DataFrame:
    """The OHLCV frame backtesting.py wants (DatetimeIndex, capitalised columns)."""
    return pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.to_datetime(bars.open_time, unit="ms", utc=True).tz_localize(None),
    )


def run_reference_sma(
    bars: Bars | pd.DataFrame, *, fast: int, slow: int, cash: float, fee: float, lot_step: float
) -> ReferenceRun:
    """Run the long-only SMA crossover in backtesting.py (see the module docstring)."""
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover
    from backtesting.test import SMA

    class LongOnlySmaCross(Strategy):  # type: ignore[misc]
        n_fast = fast
        n_slow = slow

        def init(self) -> None:
            self.fast_sma = self.I(SMA, self.data.Close, self.n_fast)
            self.slow_sma = self.I(SMA, self.data.Close, self.n_slow)

        def next(self) -> None:
            if crossover(self.fast_sma, self.slow_sma):
                if not self.position:
                    self.buy()
            elif crossover(self.slow_sma, self.fast_sma) and self.position:
                self.position.close()

    frame = bars if isinstance(bars, pd.DataFrame) else bars_frame(bars)
    test = FractionalBacktest(
        frame,
        LongOnlySmaCross,
        cash=cash,
        commission=fee,
        spread=0.0,
        trade_on_close=False,
        exclusive_orders=False,
        finalize_trades=False,
        fractional_unit=lot_step,
    )
    with warnings.catch_warnings():
        # "Some trades remain open at the end": expected, the open trade is compared too.
        warnings.simplefilter("ignore")
        stats = test.run()
    trades = stats._trades
    entries = [int(bar) for bar in trades["EntryBar"]]
    exits: list[int | None] = [int(bar) for bar in trades["ExitBar"]]
    # An open position at the end is not in _trades; its entry is the last BUY.
    open_trades = getattr(stats._strategy, "trades", ())
    for trade in open_trades:
        entries.append(int(trade.entry_bar))
        exits.append(None)
    return ReferenceRun(entries, exits, float(np.asarray(stats["Equity Final [$]"])), stats)

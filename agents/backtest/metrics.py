"""Performance metrics of a backtest: pure functions of an equity curve and a trade list.

Definitions (every figure in the result document follows these):

- The equity curve ``E_0 .. E_N`` holds the starting cash ``E_0`` and then the equity marked at
  the close of each of the ``N`` bars of the window (cash + position x close, no exit fee).
- Bar returns ``r_t = E_t / E_{t-1} - 1`` for ``t = 1..N`` (simple returns).
- ``P`` periods per year for a 24/7 market: ``365 x 86400 / timeframe_seconds``
  (1h -> 8760, 15m -> 35040, 1d -> 365).
- total return ``E_N / E_0 - 1``.
- CAGR ``(E_N / E_0) ** (P / N) - 1``: the window is ``N`` bars of the timeframe long, so it
  spans ``N / P`` years (missing candles inside the window are not counted as time).
- Sharpe ``mean(r) / std(r, ddof=1) x sqrt(P)``, risk-free rate 0, sample standard deviation.
- Sortino ``mean(r) / DD x sqrt(P)`` with the downside deviation
  ``DD = sqrt(sum(min(r_t, 0)^2) / N)`` (target return 0, over all N returns, not only the
  negative ones).
- maximum drawdown ``max_t (1 - E_t / max_{s<=t} E_s)``, as a positive fraction; its duration
  is the longest run of bars spent below a previous equity peak (from the bar after the peak
  to the bar that regains it, or to the end of the window when it never does).
- exposure: the fraction of the N bars whose close found a position open.
- trades: closed round trips only. win rate = trades with net PnL > 0 / trades; profit factor
  = sum of winning net PnL / |sum of losing net PnL| (None when there is no losing trade);
  average trade = mean net PnL (quote) and mean net return per trade. Net = after both fees.
- buy and hold: ``close_N / open_1 - 1`` (bought at the first window bar's open, no fees).

A figure that is undefined (no trades, zero variance) is None, never 0 or a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from protocol import timeframe_seconds

__all__ = [
    "Metrics",
    "TradeOutcome",
    "bar_returns",
    "compute_metrics",
    "drawdown_series",
    "max_drawdown",
    "metrics_from_columns",
    "periods_per_year",
    "sharpe_ratio",
    "sortino_ratio",
]

SECONDS_PER_YEAR = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """What the metrics need from one closed trade: its net PnL (quote) and net return."""

    pnl: float
    return_pct: float


@dataclass(frozen=True, slots=True)
class Metrics:
    """The headline figures of one backtest (fractions, not percent; None when undefined)."""

    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_duration_hours: float
    win_rate: float | None
    profit_factor: float | None
    exposure: float
    trades: int
    average_trade_pnl: float | None
    average_trade_return: float | None
    buy_and_hold_return: float | None
    final_equity: float
    bars: int
    periods_per_year: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def periods_per_year(timeframe: str) -> float:
    """Bars per year of a market that trades around the clock (1h -> 8760, 15m -> 35040)."""
    return SECONDS_PER_YEAR / timeframe_seconds(timeframe)


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Simple returns between consecutive equity points (one fewer than points)."""
    equity = np.asarray(equity, dtype=float)
    returns = equity[1:] / equity[:-1]
    returns -= 1.0  # in place: one array fewer for a long curve
    return returns


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _cagr(growth: float, periods: float, bars: int) -> float | None:
    """(growth) ** (periods / bars) - 1, None when there are no bars, the account is wiped out,
    or the annualised figure exceeds a float (a very short, very lucky window)."""
    if bars == 0 or growth <= 0:
        return None
    exponent = math.log(growth) * periods / bars
    if exponent > 700:  # exp(709) is the float limit
        return None
    return math.expm1(exponent)


def sharpe_ratio(returns: np.ndarray, periods: float) -> float | None:
    """Annualised Sharpe ratio, risk-free 0, sample std (ddof=1); None below 2 returns or
    when the returns do not vary."""
    return _sharpe(returns, float(np.mean(returns)) if len(returns) else math.nan, periods)


def _sharpe(returns: np.ndarray, mean: float, periods: float) -> float | None:
    """``sharpe_ratio`` given ``mean`` = float(np.mean(returns))."""
    if len(returns) < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if std == 0.0:
        return None
    return _finite(mean / std * math.sqrt(periods))


def sortino_ratio(returns: np.ndarray, periods: float) -> float | None:
    """Annualised Sortino ratio with the downside deviation sqrt(mean(min(r, 0)^2)) over all
    returns; None when there is no return or no negative one."""
    return _sortino(returns, float(np.mean(returns)) if len(returns) else math.nan, periods)


def _sortino(returns: np.ndarray, mean: float, periods: float) -> float | None:
    """``sortino_ratio`` given ``mean`` = float(np.mean(returns))."""
    if len(returns) == 0:
        return None
    losses = np.minimum(returns, 0.0)
    np.square(losses, out=losses)  # what ** 2 computes, without a second array
    downside = math.sqrt(float(np.mean(losses)))
    if downside == 0.0:
        return None
    return _finite(mean / downside * math.sqrt(periods))


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Drawdown at each point as a positive fraction below the running peak."""
    equity = np.asarray(equity, dtype=float)
    drawdowns = np.maximum.accumulate(equity)
    # 1 - equity / peaks, computed in the peaks' array.
    np.divide(equity, drawdowns, out=drawdowns)
    np.subtract(1.0, drawdowns, out=drawdowns)
    return drawdowns


def max_drawdown(equity: np.ndarray) -> tuple[float, int]:
    """(deepest drawdown, longest number of consecutive points below a previous peak)."""
    drawdowns = drawdown_series(equity)
    if len(drawdowns) == 0:
        return 0.0, 0
    # Runs of points under water, padded with a point above water at each end: a run starts
    # and ends where the flag changes.
    under = np.zeros(len(drawdowns) + 2, dtype=np.bool_)
    np.greater(drawdowns, 0.0, out=under[1:-1])
    edges = np.flatnonzero(under[1:] != under[:-1])
    longest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    return float(drawdowns.max()), longest


def compute_metrics(
    equity: np.ndarray,
    *,
    timeframe: str,
    trades: Sequence[TradeOutcome],
    in_position: np.ndarray,
    first_open: float | None,
    last_close: float | None,
) -> Metrics:
    """All metrics of one run.

    ``equity`` is ``E_0 .. E_N`` (starting cash first); ``in_position`` has one flag per bar
    (N); ``first_open`` / ``last_close`` are the first window bar's open and the last one's
    close, for buy and hold.
    """
    return metrics_from_columns(
        equity,
        timeframe=timeframe,
        trade_pnls=[trade.pnl for trade in trades],
        trade_returns=[trade.return_pct for trade in trades],
        in_position=in_position,
        first_open=first_open,
        last_close=last_close,
    )


def metrics_from_columns(
    equity: np.ndarray,
    *,
    timeframe: str,
    trade_pnls: Sequence[float],
    trade_returns: Sequence[float],
    in_position: np.ndarray,
    first_open: float | None,
    last_close: float | None,
) -> Metrics:
    """``compute_metrics`` with the closed trades as two columns, net PnLs and net returns (in
    the same order): what the engine collects, without one TradeOutcome per trade."""
    equity = np.asarray(equity, dtype=float)
    if equity.ndim != 1 or len(equity) < 1:
        raise ValueError("equity needs at least the starting value")
    if len(trade_pnls) != len(trade_returns):
        raise ValueError(f"{len(trade_pnls)} trade PnLs for {len(trade_returns)} trade returns")
    bars = len(equity) - 1
    if len(in_position) != bars:
        raise ValueError(f"in_position has {len(in_position)} flags for {bars} bars")
    periods = periods_per_year(timeframe)
    returns = bar_returns(equity)
    mean_return = float(np.mean(returns)) if bars else math.nan  # shared by Sharpe and Sortino
    growth = float(equity[-1] / equity[0])
    cagr = _cagr(growth, periods, bars)
    deepest, duration = max_drawdown(equity)
    pnls = np.array(trade_pnls, dtype=float)
    wins = float(pnls[pnls > 0].sum())
    losses = float(-pnls[pnls < 0].sum())
    buy_hold = None
    if first_open and last_close is not None:
        buy_hold = last_close / first_open - 1.0
    return Metrics(
        total_return=growth - 1.0,
        cagr=cagr,
        sharpe=_sharpe(returns, mean_return, periods),
        sortino=_sortino(returns, mean_return, periods),
        max_drawdown=deepest,
        max_drawdown_bars=duration,
        max_drawdown_duration_hours=duration * timeframe_seconds(timeframe) / 3600,
        win_rate=float((pnls > 0).mean()) if len(pnls) else None,
        profit_factor=wins / losses if losses > 0 else None,
        exposure=float(np.mean(in_position)) if bars else 0.0,
        trades=len(pnls),
        average_trade_pnl=float(pnls.mean()) if len(pnls) else None,
        average_trade_return=float(np.array(trade_returns, dtype=float).mean()) if len(pnls) else None,
        buy_and_hold_return=buy_hold,
        final_equity=float(equity[-1]),
        bars=bars,
        periods_per_year=periods,
    )

"""The backtest engine: one strategy over one window of candles, in process, no broker.

It runs the live decision code (decision 0005), nothing re-implemented:

- indicators: ``compute_columns`` of the technical analysis agent, over the window AND the
  warm-up candles before it (warm-up candles are never traded);
- decisions: ``strategy.decide(history, i)`` for every window candle, published on change of
  side like the strategy agent (``is_change``);
- sizing: the risk manager's ``size_order`` (lot step, minimum quantity and notional from the
  market rules), FRACTION mode, all-in by default, buffers equal to the fee and slippage;
- fills: the paper exchange's ``market_fill`` (slippage in bps against the trader, price on the
  tick grid, taker fee in the quote currency).

Execution model: a signal at the CLOSE of candle t is filled at the OPEN of candle t+1 (the
order is sized at that open, the fill price is that open moved by the slippage). A signal on
the last candle of the window is not filled. Long-only spot like the live system: a BUY opens a
position when flat (a BUY while long is ignored), a SELL closes the whole position (a SELL
while flat is ignored). The risk manager's limits (exposure, order frequency, drawdown pause,
confidence) are not applied: the backtest measures the strategy, sized and filled as live.

The hot loop touches float64 columns only; Decimal arithmetic happens once per fill. Only the
indicator columns the strategy reads are computed (``Strategy.indicator_columns``). A strategy
that marks the rows where it may trade (``Strategy.candidate_rows``, a loose numpy mask) is
asked to ``decide`` only on the rows whose Decision can be a change of side, the only ones a
live agent publishes: the first row, every marked row and the row after each; every other row
is a HOLD after a HOLD. A BUY or SELL on a row the mask called HOLD aborts the run. The equity
curve (cash + position x close at each close) is built with numpy from the fills, and each
closed trade's net PnL and return (``Trade.pnl``, ``Trade.return_pct``) are taken at its exit.

Protective exits (``BacktestConfig.exits``, decision 0023) use the risk manager's own rules
(``agents/risk_manager/exits.py``): from the first candle after the BUY's signal every held
candle is checked, inside the candle, before the strategies' decisions at its close; a
triggered exit is a SELL decided by the same risk path (``simulate``) and filled at its trigger
price (the stop, the target, the open on a gap, the close for the time stop) through
``market_fill``, slippage included. ``Fill.exit_reason`` says which exit closed a trade
(``SIGNAL``: the strategy's own SELL).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.backtest.data import Window
from agents.backtest.exits import AtrColumn, ExitWatch
from agents.backtest.metrics import Metrics, metrics_from_columns
from agents.backtest.riskpath import RiskPath, SimAccount
from agents.backtest.simulate import Fill, FillAt, Rejection, Trade, merged, simulate
from agents.risk_manager.sizing import SizingConfig, SizingMode
from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import Decision, Strategy, is_change
from agents.technical_analysis.indicators import IndicatorParams, compute_columns, rolling_columns
from infra.exchanges import MarketRules
from infra.exchanges.paper.fills import FeeRates
from protocol import SignalSide
from protocol.exits import ExitSettings

__all__ = [
    "EXECUTION_MODEL",
    "BacktestConfig",
    "BacktestResult",
    "Fill",
    "FillAt",
    "Rejection",
    "Trade",
    "build_history",
    "rows_to_decide",
    "run_backtest",
    "run_shared",
    "signal_rows",
]

EXECUTION_MODEL = (
    "Every BUY/SELL signal is decided by the live risk manager's rules (limits, sizing, minimums; "
    "rejections keep its reason codes) on the simulated account; an approved order is filled by "
    "the paper exchange's market_fill (slippage against the trader, tick rounding, taker fee in "
    "quote). Default: a signal at the close of candle t is decided and filled at the open of "
    "candle t+1 (a signal on the window's last candle is not filled); fill-at close: at candle "
    "t's close, as the live replay does. Long-only spot: a BUY while long adds (if the limits "
    "allow), a SELL sells the strategy's whole position. Indicators use warm-up candles before "
    "the window; warm-up candles are not traded. Equity is marked at each candle close "
    "(cash + position x close, no exit fee). Protective exits, when set, trigger inside a held "
    "candle (stop before take-profit; a gap fills at the open; time stop at the close), are "
    "decided by the same risk rules and fill at their price with slippage."
)

ProgressCallback = Callable[[int], None]
_PROGRESS_EVERY = 20_000
# The strategy id of a single-strategy run (results show none).
_SOLE = "backtest"


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Account, costs, market rules and risk path of a run (Decimal money).

    ``risk``: the live risk manager's limits and sizing (``RiskPath.from_settings``: the RISK_*
    settings); None is the strategy alone (``RiskPath.unlimited``: no limit refuses, FRACTION
    sizing of ``fraction`` whose buffers are exactly the fee and slippage)."""

    rules: MarketRules
    initial_cash: Decimal = Decimal("10000")
    fees: FeeRates = field(default_factory=FeeRates)
    slippage_bps: Decimal = Decimal(5)
    fraction: Decimal = Decimal(1)
    risk: RiskPath | None = None
    fill_at: FillAt = FillAt.NEXT_OPEN
    exchange: str = "binance"
    # Protective exits (None or nothing set: the strategy's SELL is the only exit).
    exits: ExitSettings | None = None

    def __post_init__(self) -> None:
        if self.initial_cash <= 0:
            raise ValueError("initial cash must be > 0")

    @property
    def risk_path(self) -> RiskPath:
        if self.risk is not None:
            return self.risk
        return RiskPath.unlimited(fraction=self.fraction, taker_fee=self.fees.taker, slippage_bps=self.slippage_bps)

    @property
    def sizing(self) -> SizingConfig:
        return self.risk_path.sizing

    def as_dict(self) -> dict[str, Any]:
        path = self.risk_path.as_dict()
        return {
            "initial_cash": str(self.initial_cash),
            "taker_fee": str(self.fees.taker),
            "slippage_bps": str(self.slippage_bps),
            "fill_at": self.fill_at.value,
            "sizing": path["sizing"],
            "risk_limits": path["limits"],
            "exits": self.exits.model_dump(mode="json", exclude_none=True) if self.exits is not None else None,
            "market_rules": {
                "symbol": self.rules.symbol,
                "tick_size": str(self.rules.tick_size),
                "lot_step": str(self.rules.lot_step),
                "min_qty": str(self.rules.min_qty),
                "min_notional": str(self.rules.min_notional),
            },
        }


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one run produced. Bar indices count from the window's first candle.
    ``strategy_id`` and ``fills`` matter for a shared run (``run_shared``)."""

    window: Window
    strategy: Strategy
    indicator_params: IndicatorParams
    config: BacktestConfig
    signals: list[tuple[int, Decision]]
    trades: list[Trade]
    rejections: list[Rejection]
    equity: NDArray[np.float64]  # E_0 (starting cash) then one value per window candle
    in_position: NDArray[np.bool_]
    final_cash: Decimal
    final_position: Decimal
    metrics: Metrics
    strategy_id: str | None = None
    fills: list[Fill] = field(default_factory=list)

    @property
    def rejections_by_reason(self) -> dict[str, int]:
        """Rejection count per reason code, most frequent first (like the live audit's)."""
        counts: dict[str, int] = {}
        for rejection in self.rejections:
            counts[rejection.code] = counts.get(rejection.code, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def build_history(
    window: Window, params: IndicatorParams, *, live_window: bool = False, only: Collection[str] | None = None
) -> IndicatorHistory:
    """The strategy's input: close and the indicators over warm-up + window candles.

    Default: ``compute_columns`` over the whole series at once. ``live_window``: the TA agent's
    own semantics (``rolling_columns``: each candle's indicators over the ``window`` candles
    ending at it), bit-identical to what the agent publishes once the warm-up covers the
    window; the recursive indicators (EMA, RSI, ATR, ADX, MACD) and OBV differ from the
    default in the last bits only, at a cost of one TA-Lib pass per candle. ``only``: just
    these indicator columns (a strategy's ``indicator_columns``; the others stay NaN)."""
    bars = window.bars
    compute = rolling_columns if live_window else compute_columns
    columns = compute(bars.open_time, bars.open, bars.high, bars.low, bars.close, bars.volume, params, only=only)
    return IndicatorHistory.from_columns(bars.open_time, bars.close, columns, readable=only)


def rows_to_decide(mask: NDArray[np.bool_], first: int) -> list[int]:
    """The rows >= ``first`` whose Decision can be a change of side, given a strategy's
    ``candidate_rows`` mask: the first row, every marked row and the row after each (any other
    row is a HOLD after a HOLD)."""
    n = len(mask)
    chosen = mask.copy()
    chosen[1:] |= mask[:-1]
    chosen[:first] = False
    if first < n:
        chosen[first] = True
    return np.flatnonzero(chosen).tolist()


def signal_rows(
    strategy: Strategy,
    history: IndicatorHistory,
    first: int,
    *,
    fast: bool = True,
    progress: ProgressCallback | None = None,
) -> list[tuple[int, Decision]]:
    """The (row, Decision) pairs the strategy agent would publish: every change of side from
    row ``first`` on (see the module docstring for the rows asked)."""
    n = len(history)
    decide = strategy.decide
    signals: list[tuple[int, Decision]] = []
    previous: Decision | None = None
    next_report = first
    mask = strategy.candidate_rows(history) if fast else None
    if mask is not None and mask.shape != (n,):
        raise ValueError(f"{strategy!r}: candidate_rows() gave shape {mask.shape} for {n} rows")
    rows: Iterable[int] = range(first, n) if mask is None else rows_to_decide(mask, first)
    hold_side = SignalSide.HOLD
    for i in rows:
        decision = decide(history, i)
        if decision.side is not hold_side and mask is not None and not mask[i]:
            raise RuntimeError(
                f"{strategy!r}: decide() says {decision.side.value} at row {i}, where its candidate_rows() "
                "mask promised HOLD; run with --exhaustive and report this"
            )
        if progress is not None and i >= next_report:
            progress(i - first)
            next_report = i + _PROGRESS_EVERY
        if is_change(previous, decision):
            previous = decision
            signals.append((i, decision))
    if progress is not None:
        progress(n - first)
    return signals


def run_backtest(
    window: Window,
    strategy: Strategy,
    indicator_params: IndicatorParams,
    config: BacktestConfig,
    *,
    history: IndicatorHistory | None = None,
    progress: ProgressCallback | None = None,
    fast: bool = True,
) -> BacktestResult:
    """Run ``strategy`` over the window's candles (see the module docstring for the model).

    ``history`` may be passed when several strategies share the same indicator columns (a grid
    over strategy parameters), to compute the indicators once; it must hold the strategy's
    ``indicator_columns``. ``fast`` lets a strategy with ``candidate_rows`` be decided only on
    the rows where its side can change; ``fast=False`` calls ``decide`` on every candle (same
    signals, slower)."""
    return run_shared(window, [(_SOLE, strategy)], indicator_params, config, history=history, progress=progress, fast=fast)[0]


def run_shared(
    window: Window,
    strategies: Sequence[tuple[str, Strategy]],
    indicator_params: IndicatorParams,
    config: BacktestConfig,
    *,
    history: IndicatorHistory | None = None,
    progress: ProgressCallback | None = None,
    fast: bool = True,
    exits: Mapping[str, ExitSettings | None] | None = None,
) -> list[BacktestResult]:
    """Several strategy instances (id, strategy) on ONE account, as the live agents run them:
    their signals decided in the live order by the live risk rules (``simulate``). One result
    per strategy, each with its own signals, trades and rejections; the equity curve and the
    metrics' curve figures are the shared account's. ``exits``: each instance's protective
    exits by id (default: ``config.exits`` for every one)."""
    bars = window.bars
    if history is None:
        only = sorted({c for _, s in strategies for c in s.indicator_columns})
        history = build_history(window, indicator_params, only=only)
    if len(history) != len(bars):
        raise ValueError("history and bars differ in length")
    first = window.first
    per_strategy = [(sid, signal_rows(s, history, first, fast=fast, progress=progress)) for sid, s in strategies]
    account = SimAccount(config.initial_cash, config.rules, config.exchange, config.risk_path)
    chosen = exits if exits is not None else {sid: config.exits for sid, _ in strategies}
    watches = {sid: ExitWatch(e, window, indicator_params) for sid, e in chosen.items() if e is not None and e.enabled}
    # ATR sizing reads the signal candle's ATR, as the risk manager reads the stored one.
    atr = AtrColumn(window, indicator_params) if config.risk_path.sizing.mode is SizingMode.ATR else None
    ledger = simulate(window, merged(per_strategy), account, fees=config.fees, slippage_bps=config.slippage_bps,
                      fill_at=config.fill_at, exits=watches, atr=atr)
    equity, holding = _equity_curve(window, ledger.fill_bars, ledger.cash_after, ledger.position_after)
    n = len(bars)
    window_bars = n - first
    results = []
    for (sid, strategy), (_, signals) in zip(strategies, per_strategy, strict=True):
        metrics = metrics_from_columns(
            equity,
            timeframe=bars.timeframe,
            trade_pnls=ledger.trade_pnls.get(sid, []),
            trade_returns=ledger.trade_returns.get(sid, []),
            in_position=holding,
            first_open=float(bars.open[first]) if window_bars else None,
            last_close=float(bars.close[-1]) if window_bars else None,
        )
        results.append(BacktestResult(
            window, strategy, indicator_params, config, [(i - first, d) for i, d in signals],
            ledger.trades.get(sid, []), [r for r in ledger.rejections if r.strategy_id == sid],
            equity, holding, account.cash, account.positions.get(sid, Decimal(0)), metrics,
            strategy_id=None if sid == _SOLE else sid, fills=[f for f in ledger.fills if f.strategy_id == sid],
        ))
    return results


def _equity_curve(
    window: Window, fill_bars: list[int], cash_after: list[float], position_after: list[float]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """E_0 = starting cash, then cash + position x close at every window close.

    ``cash_after``/``position_after`` hold the start, then the values after the fill at each of
    ``fill_bars``; a bar takes the values after the last fill at or before it."""
    close = window.bars.close[window.first :]
    count = len(close)
    lengths = np.diff(np.array([0, *fill_bars, count], dtype=np.int64))
    positions = np.array(position_after)
    equity = np.empty(count + 1)
    equity[0] = cash_after[0]
    # position x close + cash (float addition commutes: the same values as cash + position x
    # close), written straight into the curve.
    marked = equity[1:]
    np.multiply(np.repeat(positions, lengths), close, out=marked)
    marked += np.repeat(np.array(cash_after), lengths)
    return equity, np.repeat(positions > 0, lengths)

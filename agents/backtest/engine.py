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
(``agents/risk_manager/exits.py``): from the entry candle (the one whose open filled the BUY)
every held candle is checked, inside the candle, before the strategy's decision at its close;
an exit fills at its trigger price (the stop, the target, the open on a gap, the close for the
time stop) through ``market_fill``, slippage included. A strategy SELL at the close of t fills
at the open of t+1, before t+1 is checked. ``Fill.exit_reason`` says which exit closed a trade
(``SIGNAL``: the strategy's own SELL).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from agents.backtest.data import Window
from agents.backtest.metrics import Metrics, metrics_from_columns
from agents.backtest.exits import ExitWatch
from agents.risk_manager.exits import ExitState, ExitTrigger, advance
from agents.risk_manager.sizing import SizedOrder, SizingConfig, SizingMode, size_order
from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import Decision, Strategy, is_change
from agents.technical_analysis.indicators import IndicatorParams, compute_columns, rolling_columns
from infra.exchanges import MarketRules
from infra.exchanges.paper.fills import FeeRates, FillQuote, FillRejected, funds_needed, market_fill
from protocol import Side, SignalSide, split_symbol
from protocol.exits import ExitSettings

__all__ = [
    "EXECUTION_MODEL",
    "BacktestConfig",
    "BacktestResult",
    "Fill",
    "Rejection",
    "Trade",
    "build_history",
    "rows_to_decide",
    "run_backtest",
]

EXECUTION_MODEL = (
    "A signal at the close of candle t fills at the open of candle t+1: sized there by the risk "
    "manager's size_order and filled by the paper exchange's market_fill (slippage against the "
    "trader, tick rounding, taker fee in quote). Long-only spot: BUY opens when flat, SELL closes "
    "the whole position. Indicators use warm-up candles before the window; warm-up candles are "
    "not traded. A signal on the window's last candle is not filled. Equity is marked at each "
    "candle close (cash + position x close, no exit fee). Protective exits, when set, trigger "
    "inside a held candle (stop before take-profit; a gap fills at the open; time stop at the "
    "close) and fill at their price with slippage."
)
# Fill.exit_reason of an entry and of a strategy's own SELL.
SIGNAL_EXIT = "SIGNAL"

ProgressCallback = Callable[[int], None]
_PROGRESS_EVERY = 20_000
_BUY, _SELL = Side.BUY, Side.SELL


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Account, costs and market rules of a run (Decimal money)."""

    rules: MarketRules
    initial_cash: Decimal = Decimal("10000")
    fees: FeeRates = field(default_factory=FeeRates)
    slippage_bps: Decimal = Decimal(5)
    fraction: Decimal = Decimal(1)
    # Protective exits (None or nothing set: the strategy's SELL is the only exit).
    exits: ExitSettings | None = None

    def __post_init__(self) -> None:
        if self.initial_cash <= 0:
            raise ValueError("initial cash must be > 0")

    @property
    def sizing(self) -> SizingConfig:
        """FRACTION sizing whose buffers are exactly the fee and the slippage, so all-in
        spends the whole balance on the lot-rounded quantity and its fee."""
        return SizingConfig(
            mode=SizingMode.FRACTION,
            fraction=self.fraction,
            fee_buffer=self.fees.taker,
            slippage_buffer=self.slippage_bps / Decimal(10000),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "initial_cash": str(self.initial_cash),
            "taker_fee": str(self.fees.taker),
            "slippage_bps": str(self.slippage_bps),
            "sizing": {"mode": SizingMode.FRACTION.value, "fraction": str(self.fraction)},
            "exits": self.exits.model_dump(mode="json", exclude_none=True) if self.exits is not None else None,
            "market_rules": {
                "symbol": self.rules.symbol,
                "tick_size": str(self.rules.tick_size),
                "lot_step": str(self.rules.lot_step),
                "min_qty": str(self.rules.min_qty),
                "min_notional": str(self.rules.min_notional),
            },
        }


class Fill(NamedTuple):
    """One executed order: the signal's candle, the candle it filled at, and the paper fill.
    (Fill and Trade are NamedTuples like FillQuote: built once per fill; decision 0009.)"""

    signal_bar: int
    bar: int
    time: datetime
    quote: FillQuote
    reason: str
    # SIGNAL, or the protective exit (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP) that filled.
    exit_reason: str = SIGNAL_EXIT


class Trade(NamedTuple):
    """A round trip (exit None while still open at the end). Bars are window indices."""

    entry: Fill
    exit: Fill | None

    @property
    def exit_reason(self) -> str | None:
        """Which exit closed the trade: SIGNAL or a protective exit (None while open)."""
        return None if self.exit is None else self.exit.exit_reason

    @property
    def cost(self) -> Decimal:
        return self.entry.quote.notional + self.entry.quote.fee

    @property
    def pnl(self) -> Decimal | None:
        """Net PnL in quote after both fees (None while open)."""
        if self.exit is None:
            return None
        return self.exit.quote.notional - self.exit.quote.fee - self.cost

    @property
    def return_pct(self) -> Decimal | None:
        pnl = self.pnl
        return None if pnl is None else pnl / self.cost


@dataclass(frozen=True, slots=True)
class Rejection:
    """A signal that produced no fill, and why (sizing or market rules, like live)."""

    bar: int
    time: datetime
    side: str
    reason: str


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one run produced. Bar indices count from the window's first candle."""

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


class _Account:
    """Cash and position in exact Decimals, changed only by paper fills."""

    def __init__(self, config: BacktestConfig) -> None:
        self.config = config
        self.sizing = config.sizing
        self.cash = config.initial_cash
        self.position = Decimal(0)
        self.base, self.quote_asset, _ = split_symbol(config.rules.symbol)
        # Read once per fill: plain attributes instead of attribute chains.
        self.rules, self.fees, self.slippage_bps = config.rules, config.fees, config.slippage_bps
        self.taker = config.fees.taker

    def buy(self, price: Decimal) -> FillQuote | str:
        rules, fees = self.rules, self.fees
        sized = size_order(_BUY, price, rules, self.sizing, available_quote=self.cash)
        if not isinstance(sized, SizedOrder):
            return f"{sized.reason.value}: {sized.detail}"
        quantity = sized.quantity
        # The sizing buffers are 1 + fee + slippage; the fill costs (1 + slippage, rounded up
        # to the tick) x (1 + fee), a hair more. Step down a lot until the paper exchange's
        # own funds check would pass, instead of overdrawing the account.
        while True:
            try:
                fill = market_fill(
                    _BUY, quantity, price, rules, slippage_bps=self.slippage_bps, fees=fees, quote_asset=self.quote_asset
                )
            except FillRejected as exc:
                return exc.reason
            if funds_needed(_BUY, fill.quantity, fill.price, self.taker) <= self.cash:
                break
            quantity -= rules.lot_step
        self.cash -= fill.notional + fill.fee
        self.position += fill.quantity
        return fill

    def sell(self, price: Decimal) -> FillQuote | str:
        rules = self.rules
        sized = size_order(_SELL, price, rules, self.sizing, available_quote=self.cash, position=self.position)
        if not isinstance(sized, SizedOrder):
            return f"{sized.reason.value}: {sized.detail}"
        try:
            fill = market_fill(
                _SELL, sized.quantity, price, rules, slippage_bps=self.slippage_bps, fees=self.fees, quote_asset=self.quote_asset
            )
        except FillRejected as exc:
            return exc.reason
        self.cash += fill.notional - fill.fee
        self.position -= fill.quantity
        return fill


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
    bars = window.bars
    if history is None:
        history = build_history(window, indicator_params, only=strategy.indicator_columns)
    if len(history) != len(bars):
        raise ValueError("history and bars differ in length")
    account = _Account(config)
    n, first = len(bars), window.first
    decide = strategy.decide
    candles = bars.candles
    signals: list[tuple[int, Decision]] = []
    trades: list[Trade] = []
    rejections: list[Rejection] = []
    # Window bar, cash and position after each fill (slot 0: the start): the equity curve is
    # rebuilt from these.
    fill_bars: list[int] = []
    cash_after: list[float] = [float(config.initial_cash)]
    position_after: list[float] = [0.0]
    # Net PnL and return of each closed trade as floats, for the metrics.
    trade_pnls: list[float] = []
    trade_returns: list[float] = []
    entry: Fill | None = None
    previous: Decision | None = None
    buy_side, sell_side = SignalSide.BUY, SignalSide.SELL
    next_report = first
    mask = strategy.candidate_rows(history) if fast else None
    if mask is not None and mask.shape != (n,):
        raise ValueError(f"{strategy!r}: candidate_rows() gave shape {mask.shape} for {n} rows")
    rows: Iterable[int] = range(first, n) if mask is None else rows_to_decide(mask, first)
    hold_side = SignalSide.HOLD
    flat = Decimal(0)
    watch = ExitWatch(config.exits, window, indicator_params) if config.exits is not None and config.exits.enabled else None
    # The open position's first exit: (absolute row, trigger, state before that row), or None.
    pending: tuple[int, ExitTrigger, ExitState] | None = None

    def book(fill: Fill, outcome: FillQuote, closing: bool) -> None:
        """Record a fill; a closing one ends the open trade."""
        nonlocal entry
        fill_bars.append(fill.bar)
        cash_after.append(float(account.cash))
        if not closing:
            position_after.append(float(account.position))
            entry = fill
            return
        # Long-only: a SELL sells the whole (lot-rounded) position, which normally leaves 0;
        # float(0) would cost as much as any conversion.
        position = account.position
        position_after.append(float(position) if position else 0.0)
        assert entry is not None
        trades.append(Trade(entry, fill))
        # Trade.pnl and Trade.return_pct, the same Decimal operations on the two quotes at hand.
        bought = entry.quote
        cost = bought.notional + bought.fee
        pnl = outcome.notional - outcome.fee - cost
        trade_pnls.append(float(pnl))
        trade_returns.append(float(pnl / cost))
        entry = None

    def exits_through(row: int) -> None:
        """Fill the open position's protective exit if it triggers at or before ``row``."""
        nonlocal pending
        while pending is not None and pending[0] <= row:
            at_row, hit, state = pending
            pending = None
            candle = candles[at_row]
            outcome = account.sell(hit.price)
            if isinstance(outcome, str):
                # Not sellable (e.g. under the minimum notional): held, and watched from the next candle.
                rejections.append(Rejection(at_row - first, candle.open_time, _SELL.value, f"{hit.reason.value}: {outcome}"))
                assert watch is not None
                pending = watch.scan(at_row + 1, advance(state, watch.bar(at_row)))
                continue
            bar = at_row - first
            detail = f"{hit.reason.value} at {hit.price}" + (f" (level {hit.level})" if hit.level is not None else "")
            book(Fill(bar, bar, candle.open_time, outcome, detail, hit.reason.value), outcome, True)

    for i in rows:
        exits_through(i)
        decision = decide(history, i)
        side = decision.side
        if side is not hold_side and mask is not None and not mask[i]:
            raise RuntimeError(
                f"{strategy!r}: decide() says {decision.side.value} at row {i}, where its candidate_rows() "
                "mask promised HOLD; run with --exhaustive and report this"
            )
        if progress is not None and i >= next_report:
            progress(i - first)
            next_report = i + _PROGRESS_EVERY
        if not is_change(previous, decision):
            continue
        previous = decision
        signals.append((i - first, decision))
        if side is not buy_side and side is not sell_side:
            continue
        long = account.position > flat
        if (side is buy_side) == long:
            continue  # BUY while long or SELL while flat: nothing to do (long-only spot)
        if i + 1 >= n:
            rejections.append(Rejection(i - first, candles[i].open_time, side.value, "last candle of the window: no next open to fill at"))
            continue
        at = candles[i + 1]
        outcome = account.buy(at.open) if side is buy_side else account.sell(at.open)
        if isinstance(outcome, str):
            rejections.append(Rejection(i + 1 - first, at.open_time, side.value, outcome))
            continue
        bar = i + 1 - first
        book(Fill(i - first, bar, at.open_time, outcome, decision.reason), outcome, side is sell_side)
        if watch is not None:
            # The BUY fills at the open of i + 1: that candle is the first one held.
            pending = watch.scan(i + 1, watch.entry_state(outcome.price, i)) if side is buy_side else None
    exits_through(n - 1)
    if progress is not None:
        progress(n - first)
    if entry is not None:
        trades.append(Trade(entry, None))
    equity, holding = _equity_curve(window, fill_bars, cash_after, position_after)
    window_bars = n - first
    metrics = metrics_from_columns(
        equity,
        timeframe=bars.timeframe,
        trade_pnls=trade_pnls,
        trade_returns=trade_returns,
        in_position=holding,
        first_open=float(bars.open[first]) if window_bars else None,
        last_close=float(bars.close[-1]) if window_bars else None,
    )
    return BacktestResult(
        window, strategy, indicator_params, config, signals, trades, rejections, equity, holding,
        account.cash, account.position, metrics,
    )


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

"""From strategies' signals to decisions and fills on one shared simulated account.

The signals of every strategy of a run, in the order the live system handles them (candle by
candle; within a candle in the strategies' configured order, as the strategy agent publishes
them and the risk manager decides them one after the other on a settled account), each:

1. decided by the live risk rules (``riskpath.SimAccount.decide``): approved with a sized
   order, or rejected with the live reason code;
2. an approved order is filled by the paper exchange's ``market_fill`` (slippage, tick, taker
   fee), or refused like the paper exchange refuses it (no funds for the fill's cost);
3. booked: cash, the strategy's position, its trades.

Where the price comes from (``FillAt``): ``next_open`` (the backtester's default) decides and
fills at the open of the candle after the signal's; ``close`` is the live replay's model — the
risk manager's reference price is the signal candle's close and the paper exchange fills there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from agents.backtest.data import Window
from agents.backtest.exits import AtrColumn, ExitWatch
from agents.backtest.riskpath import SignalFacts, SimAccount, rejection_text
from agents.risk_manager.exits import ExitState, ExitTrigger, advance
from agents.risk_manager.rules import Approved, Rejected
from agents.strategy.strategies import Decision
from infra.exchanges.paper.fills import FeeRates, FillQuote, FillRejected, funds_needed, market_fill
from protocol import Side, SignalSide, timeframe_seconds

__all__ = ["Event", "Fill", "FillAt", "Ledger", "Rejection", "Trade", "simulate"]

_BUY_SIGNAL, _SELL_SIGNAL = SignalSide.BUY, SignalSide.SELL
_BUY, _SELL = Side.BUY, Side.SELL
_ZERO = Decimal(0)


class FillAt(StrEnum):
    """Which price a signal is decided and filled at (see the module docstring)."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"


class Event(NamedTuple):
    """One published signal: its row, the strategy and its Decision."""

    row: int
    strategy_id: str
    decision: Decision


class Fill(NamedTuple):
    """One executed order: the signal's candle, the candle it filled at, and the paper fill.
    (Fill and Trade are NamedTuples like FillQuote: built once per fill; decision 0009.)"""

    signal_bar: int
    bar: int
    time: datetime
    quote: FillQuote
    reason: str
    strategy_id: str = ""
    # SIGNAL, or the protective exit (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP) that filled.
    exit_reason: str = "SIGNAL"


class Trade(NamedTuple):
    """A round trip (exit None while still open at the end): the first BUY, the BUYs that added
    to the position (``adds``: a BUY while long, as the live risk manager allows) and the SELL
    that closed it. Bars are window indices."""

    entry: Fill
    exit: Fill | None
    adds: tuple[Fill, ...] = ()

    @property
    def exit_reason(self) -> str | None:
        """Which exit closed the trade: SIGNAL or a protective exit (None while open)."""
        return None if self.exit is None else self.exit.exit_reason

    @property
    def cost(self) -> Decimal:
        return sum((f.quote.notional + f.quote.fee for f in (self.entry, *self.adds)), _ZERO)

    @property
    def pnl(self) -> Decimal | None:
        """Net PnL in quote after every fee (None while open)."""
        if self.exit is None:
            return None
        return self.exit.quote.notional - self.exit.quote.fee - self.cost

    @property
    def return_pct(self) -> Decimal | None:
        pnl = self.pnl
        return None if pnl is None else pnl / self.cost


@dataclass(frozen=True, slots=True)
class Rejection:
    """A signal that produced no fill, and why: ``code`` is the live risk manager's reason
    (RejectionReason) or EXCHANGE_REJECTED / NOT_FILLED; ``reason`` is ``code: detail``."""

    bar: int
    time: datetime
    side: str
    reason: str
    strategy_id: str = ""
    # The bar of the signal it refused (``bar`` is where it would have filled).
    signal_bar: int = -1
    # The protective exit whose SELL was refused (None: the strategy's own signal).
    exit_reason: str | None = None

    @property
    def code(self) -> str:
        return self.reason.split(":", 1)[0].strip()


@dataclass(slots=True)
class Ledger:
    """What a simulation produced: per strategy its trades and rejections, and for the equity
    curve the cash and total position after each fill."""

    fill_bars: list[int] = field(default_factory=list)
    cash_after: list[float] = field(default_factory=list)
    position_after: list[float] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    # Net PnL and return of each closed trade as floats, for the metrics.
    trade_pnls: dict[str, list[float]] = field(default_factory=dict)
    trade_returns: dict[str, list[float]] = field(default_factory=dict)


def simulate(
    window: Window,
    events: Iterable[Event],
    account: SimAccount,
    *,
    fees: FeeRates,
    slippage_bps: Decimal,
    fill_at: FillAt = FillAt.NEXT_OPEN,
    exits: Mapping[str, ExitWatch] | None = None,
    atr: AtrColumn | None = None,
) -> Ledger:
    """Decide, fill and book ``events`` (in the order given) on ``account``; ``exits`` watches
    the positions of the strategies it names (their protective exits); ``atr``: each row's ATR,
    which ATR sizing needs (without it every BUY is refused NO_PRICE, as live without an ATR)."""
    bars = window.bars
    candles, first, n = bars.candles, window.first, len(bars.candles)
    timeframe = bars.timeframe
    step = timedelta(seconds=timeframe_seconds(timeframe))
    rules, quote_asset, taker = account.rules, account.quote, fees.taker
    exchange, symbol = account.exchange, account.symbol
    ledger = Ledger(cash_after=[float(account.cash)], position_after=[0.0])
    open_entries: dict[str, list[Fill]] = {}
    watches = exits or {}
    # Each watched open position's first exit: (row, trigger, state before that row).
    pending: dict[str, tuple[int, ExitTrigger, ExitState]] = {}
    at_close = fill_at is FillAt.CLOSE
    stepping = not account.path.limited

    def fill_order(strategy_id: str, buying: bool, quantity: Decimal, price: Decimal, signal_row: int, row: int,
                   side: str, exit_reason: str | None) -> FillQuote | None:
        """The paper exchange's fill of an approved order, or None (refusal recorded)."""
        at = candles[row]
        while True:
            try:
                quote = market_fill(_BUY if buying else _SELL, quantity, price, rules,
                                    slippage_bps=slippage_bps, fees=fees, quote_asset=quote_asset)
            except FillRejected as exc:
                ledger.rejections.append(Rejection(row - first, at.open_time, side, f"EXCHANGE_REJECTED: {exc.reason}",
                                                   strategy_id, signal_row - first, exit_reason))
                return None
            # The strategy alone (all-in, buffers exactly the fee and slippage): the fill costs
            # (1 + slippage, rounded up to the tick) x (1 + fee), a hair more than sized; step down
            # a lot instead of overdrawing. With the live buffers the paper exchange refuses.
            if not (stepping and buying and funds_needed(_BUY, quote.quantity, quote.price, taker) > account.cash):
                break
            quantity -= rules.lot_step
        if buying and (needed := funds_needed(_BUY, quote.quantity, quote.price, taker)) > account.cash:
            ledger.rejections.append(Rejection(
                row - first, at.open_time, side,
                f"EXCHANGE_REJECTED: insufficient funds: needs {needed} {quote_asset}, {account.cash} {quote_asset} free",
                strategy_id, signal_row - first, exit_reason,
            ))
            return None
        return quote

    def book(strategy_id: str, buying: bool, quote: FillQuote, fill: Fill) -> None:
        """Settle a fill on the account and the strategy's trades."""
        account.settle(strategy_id, buying, quote.quantity,
                       -(quote.notional + quote.fee) if buying else quote.notional - quote.fee)
        ledger.fills.append(fill)
        ledger.fill_bars.append(fill.bar)
        ledger.cash_after.append(float(account.cash))
        total = account.base_total
        ledger.position_after.append(float(total) if total else 0.0)
        entries = open_entries.setdefault(strategy_id, [])
        if buying:
            entries.append(fill)
            return
        pending.pop(strategy_id, None)
        if not entries:
            return  # a position the run did not open (never: the account starts flat)
        trade = Trade(entries[0], fill, tuple(entries[1:]))
        ledger.trades.setdefault(strategy_id, []).append(trade)
        cost = trade.cost
        pnl = quote.notional - quote.fee - cost
        ledger.trade_pnls.setdefault(strategy_id, []).append(float(pnl))
        ledger.trade_returns.setdefault(strategy_id, []).append(float(pnl / cost))
        entries.clear()

    def exits_through(row: int) -> None:
        """Decide the watched positions' exits on the held candles up to ``row``: by candle,
        then by strategy id (the live risk manager's order)."""
        while pending:
            strategy_id, (at_row, hit, before) = min(pending.items(), key=lambda item: (item[1][0], item[0]))
            if at_row > row:
                return
            del pending[strategy_id]
            watch, candle = watches[strategy_id], candles[at_row]
            reason = hit.reason.value
            facts = SignalFacts(_SELL_SIGNAL, 1.0, hit.price, candle.open_time, timeframe, exchange, symbol, reason)
            outcome = account.decide(strategy_id, facts, hit.price, candle.open_time + step, mark=candle.close)
            quote = None
            if isinstance(outcome, Rejected):
                ledger.rejections.append(Rejection(at_row - first, candle.open_time, _SELL.value, rejection_text(outcome),
                                                   strategy_id, at_row - first, reason))
            else:
                assert isinstance(outcome, Approved)
                quote = fill_order(strategy_id, False, outcome.order.quantity, hit.price, at_row, at_row, _SELL.value, reason)
            if quote is None:
                # Refused: held on, watched from the next candle (as live).
                found = watch.scan(at_row + 1, advance(before, watch.bar(at_row)))
                if found is not None:
                    pending[strategy_id] = found
                continue
            level = f" (level {hit.level})" if hit.level is not None else ""
            bar = at_row - first
            book(strategy_id, False, quote,
                 Fill(bar, bar, candle.open_time, quote, f"{reason} at {hit.price}{level}", strategy_id, reason))

    for i, strategy_id, decision in events:
        if pending:
            exits_through(i)
        side = decision.side
        if side is not _BUY_SIGNAL and side is not _SELL_SIGNAL:
            continue
        candle = candles[i]
        if at_close:
            j, reference, now = i, candle.close, candle.open_time + step
        elif i + 1 >= n:
            ledger.rejections.append(Rejection(i - first, candle.open_time, side.value,
                                               "NOT_FILLED: last candle of the window: no next open to fill at", strategy_id, i - first))
            continue
        else:
            j = i + 1
            reference, now = candles[j].open, candles[j].open_time
        facts = SignalFacts(side, decision.confidence, candle.close, candle.open_time, timeframe, exchange, symbol, decision.reason)
        outcome = account.decide(strategy_id, facts, reference, now, atr=atr.at(i) if atr is not None else None)
        if isinstance(outcome, Rejected):
            ledger.rejections.append(Rejection(j - first, candles[j].open_time, side.value, rejection_text(outcome), strategy_id, i - first))
            continue
        assert isinstance(outcome, Approved)
        buying = side is _BUY_SIGNAL
        quote = fill_order(strategy_id, buying, outcome.order.quantity, reference, i, j, side.value, None)
        if quote is None:
            continue
        opening = buying and not open_entries.get(strategy_id)
        book(strategy_id, buying, quote, Fill(i - first, j - first, candles[j].open_time, quote, decision.reason, strategy_id))
        watch = watches.get(strategy_id)
        if opening and watch is not None:
            # Held from the candle after the signal's (the one whose open fills a next-open BUY).
            found = watch.scan(i + 1, watch.entry_state(quote.price, i))
            if found is not None:
                pending[strategy_id] = found
    exits_through(n - 1)
    for strategy_id, entries in open_entries.items():
        if entries:
            ledger.trades.setdefault(strategy_id, []).append(Trade(entries[0], None, tuple(entries[1:])))
    return ledger


def merged(per_strategy: Sequence[tuple[str, Iterable[tuple[int, Decision]]]]) -> list[Event]:
    """The signals of several strategies in the live order: by row, then by the strategies'
    order in ``per_strategy`` (the configured order)."""
    keyed = [(row, rank, sid, d) for rank, (sid, signals) in enumerate(per_strategy) for row, d in signals]
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [Event(row, sid, d) for row, _, sid, d in keyed]

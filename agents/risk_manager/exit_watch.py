"""Live protective exits: which open positions a candle stops out, as SELL signals (decision 0023).

The rules are ``agents/risk_manager/exits.py`` (shared with the backtester). This module
derives each open position's exit state from the ledger and the candle store only, so a restart
rebuilds it and every re-evaluation gives the same answer:

- the position (quantity, average entry price) from ``positions``;
- its opening BUY: the first BUY fill of the strategy and symbol after its last SELL fill, and
  that order's approved decision, whose audited signal holds the exits (``Signal.exits``), the
  timeframe and the entry signal's candle;
- the held candles (after the entry signal's candle, through the candle being checked) from the
  candle store, walked with ``first_exit``.

An exit found at candle k becomes a SELL Signal whose message id derives from the candle's id,
the strategy id and ``exit``: one exit per strategy, symbol and candle, so a re-evaluation
(redelivery, restart, the candle and a signal both asking) finds the audited decision instead
of deciding twice. An exit whose SELL was refused is skipped, and the walk goes on from the next
candle, as the backtester does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.risk_manager.exits import Bar, ExitState, ExitTrigger, advance, enter, first_exit
from infra.bus.isolation import waiting_on_other_messages
from infra.db.ledger import DecisionKind, Ledger
from infra.influx import InfluxPriceStore
from infra.logging import get_logger
from protocol import Candle, Signal, SignalSide, candle_id, derive_message_id, timeframe_seconds
from protocol.exits import ExitSettings

__all__ = ["EXIT_STRATEGY", "ExitEnforcer", "OpenEntry", "exit_signal", "open_entries", "without_exit_fields"]

# Signal.strategy of a protective exit: the audit tells it from the strategy's own SELL.
EXIT_STRATEGY = "protective-exit"
_ONE_MS = timedelta(milliseconds=1)
# Seconds between reads of the signal progress while the candle queue waits for it. A SignalsDone
# recorded in this process wakes the wait at once (``progress_recorded``); the reads are for those
# another instance records (a partition of the signals taken over elsewhere).
_POLL = 0.1
_log = get_logger(component="exit-watch")

# Each open position of ``symbol`` with the decision of the BUY that opened it.
_OPEN_ENTRIES = text("""
SELECT p.strategy_id, p.exchange, p.symbol, p.average_entry_price, d.inputs, d.client_order_id
FROM positions p
JOIN LATERAL (
    SELECT f.client_order_id FROM fills f
    WHERE f.strategy_id = p.strategy_id AND f.exchange = p.exchange AND f.symbol = p.symbol AND f.side = 'BUY'
      AND f.id > COALESCE((SELECT max(s.id) FROM fills s WHERE s.strategy_id = p.strategy_id
                           AND s.exchange = p.exchange AND s.symbol = p.symbol AND s.side = 'SELL'), 0)
    ORDER BY f.id LIMIT 1
) opening ON true
JOIN risk_decisions d ON d.client_order_id = opening.client_order_id AND d.decision = 'APPROVED'
WHERE p.exchange = :exchange AND p.symbol = :symbol AND p.quantity > 0 AND p.average_entry_price IS NOT NULL
ORDER BY p.strategy_id
""")


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """An open position watched by exits: what the opening BUY's audited signal said."""

    strategy_id: str
    exchange: str
    symbol: str
    timeframe: str
    entry_price: Decimal
    entry_candle: datetime  # open time of the entry signal's candle
    exits: ExitSettings
    opening_order: str  # client order id of the opening BUY


async def open_entries(sessions: async_sessionmaker[AsyncSession], exchange: str, symbol: str) -> list[OpenEntry]:
    """The open positions of ``symbol`` whose opening BUY carried exits."""
    async with sessions() as session:
        rows = (await session.execute(_OPEN_ENTRIES, {"exchange": exchange, "symbol": symbol})).all()
    found: list[OpenEntry] = []
    for row in rows:
        entry = _entry(row.strategy_id, row.exchange, row.symbol, row.average_entry_price, row.inputs, row.client_order_id)
        if entry is not None:
            found.append(entry)
    return found


def _entry(strategy_id: str, exchange: str, symbol: str, price: Decimal, inputs: dict[str, Any], order: str) -> OpenEntry | None:
    signal = inputs.get("signal") or {}
    exits = signal.get("exits")
    if not exits:
        return None
    settings = ExitSettings.model_validate(exits)
    if not settings.enabled:
        return None
    return OpenEntry(strategy_id, exchange, symbol, str(signal["timeframe"]), Decimal(price),
                     datetime.fromisoformat(str(signal["candle_time"])), settings, order)


def without_exit_fields(signal: Signal) -> Signal:
    """A bus signal as the risk manager decides it: ``exit_reason`` and ``exit_price`` belong to
    its own exits only (they set the paper fill price), so a published signal's are dropped."""
    if signal.exit_reason is None and signal.exit_price is None:
        return signal
    return signal.model_copy(update={"exit_reason": None, "exit_price": None})


def held_from(entry: OpenEntry) -> datetime:
    """Open time of the first held candle."""
    return entry.entry_candle + timedelta(seconds=timeframe_seconds(entry.timeframe))


def exit_signal(entry: OpenEntry, candle: Candle, hit: ExitTrigger, *, source: str) -> Signal:
    """The SELL of ``entry``'s strategy for the exit ``hit`` at ``candle``; its id derives from
    the candle's and the strategy's, so the same exit is always the same signal (and order)."""
    parent = candle_id(candle.exchange, candle.symbol, candle.timeframe, candle.open_time)
    level = f" (level {hit.level})" if hit.level is not None else ""
    return Signal(
        message_id=derive_message_id(parent, Signal.schema_id(), entry.strategy_id, "exit"),
        correlation_id=parent,
        causation_id=parent,
        source=source,
        strategy_id=entry.strategy_id,
        strategy=EXIT_STRATEGY,
        exchange=candle.exchange,
        symbol=candle.symbol,
        timeframe=candle.timeframe,
        side=SignalSide.SELL,
        confidence=1.0,
        reason=f"{hit.reason.value}: exit at {hit.price}{level}, entry {entry.entry_price}; exits {entry.exits.describe()}",
        indicators={},
        candle_time=candle.open_time,
        price=hit.price,
        exits=entry.exits,
        exit_reason=hit.reason,
        exit_price=hit.price,
    )


class ExitEnforcer:
    """Enforces the exits of the open positions of a symbol up to a candle (the risk manager's
    candle and signal handlers call ``through``); ``decide`` is the risk manager's own decision
    path, so an exit SELL is sized, reserved, audited and published like any SELL. ``sessions``
    are only read through (the agent passes ``infra.db.read_sessions``).

    The state reached without an exit is cached per position (by its opening order) as a
    shortcut only: it is what a walk from the entry computes, and a restart recomputes it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: InfluxPriceStore, ledger: Ledger,
                 decide: Callable[[Signal], Awaitable[None]], *, source: str) -> None:
        self._sessions, self._store, self._ledger, self._decide, self._source = sessions, store, ledger, decide, source
        self._walked: dict[str, tuple[datetime, ExitState]] = {}
        # One walk per market at a time: the candle queue and the signals may both ask.
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Per market: the signal progress at which a wait ran out (stalled).
        self._stalled: dict[tuple[str, str, str], datetime] = {}
        self._decided = asyncio.Event()  # set by each SignalsDone recorded here (wakes _signals_reach)
        self.exits_decided = 0
        self.checks = 0  # calls of ``through`` completed (heartbeat; tests wait on it)
        self.stalls = 0  # candle-queue waits that ran out (heartbeat)

    async def through(self, exchange: str, symbol: str, timeframe: str, candle_open: datetime) -> None:
        """Check every held candle of ``symbol`` up to the one opened at ``candle_open``."""
        async with self._locks.setdefault((exchange, symbol), asyncio.Lock()):
            for entry in await open_entries(self._sessions, exchange, symbol):
                if entry.timeframe == timeframe:
                    await self._enforce(entry, candle_open)
        self.checks += 1

    def progress_recorded(self) -> None:
        """A SignalsDone was recorded (committed) in this process: a candle waiting for the
        signals of its market reads again now rather than at its next poll."""
        self._decided.set()

    async def after_signals(self, candle: Candle, *, wait: float, stopping: Callable[[], bool],
                            settled: Callable[[], Awaitable[None]]) -> None:
        """The candle queue's check of ``candle`` (decision 0028): exits at a candle come after
        the strategies' signals of the candle before it (the backtester's order), and those may
        still be on their way through technical analysis and the strategy agent when the candle
        reaches this queue. So with a watched position this first waits until the strategy
        agent's SignalsDone of the previous candle has been handled on the signals queue (every
        signal of that candle came before it there) — or until that progress has not moved for
        ``wait`` seconds (strategy or analysis agent down): a protective exit must not depend on
        the strategies being alive. Live, the previous candle's marker came long before.
        Then, as a signal does, it waits for the market's open orders to settle (``settled``):
        the previous candle's SELL may still be filling, and its position must not be walked."""
        if not any(e.timeframe == candle.timeframe for e in await open_entries(self._sessions, candle.exchange, candle.symbol)):
            # Nothing watched: nothing to walk either (a position opened later is walked from its
            # entry by the next candle or signal), so this read is the candle's only one.
            self.checks += 1
            return
        previous = candle.open_time - timedelta(seconds=timeframe_seconds(candle.timeframe))
        await self._signals_reach((candle.exchange, candle.symbol, candle.timeframe), previous, wait, stopping)
        await settled()
        # Read again: the wait may have seen the position closed or another opened.
        await self.through(candle.exchange, candle.symbol, candle.timeframe, candle.open_time)

    async def _signals_reach(self, key: tuple[str, str, str], candle_open: datetime, wait: float,
                             stopping: Callable[[], bool]) -> None:
        """Wait until the signals of the candle opened at ``candle_open`` are all decided, while
        that progress keeps moving (each advance restarts the ``wait``)."""
        loop = asyncio.get_running_loop()
        self._decided.clear()  # before the read: a decision committed during it wakes the wait
        last = await self._ledger.latest_signal_candle(*key)
        if last is None or self._stalled.get(key) == last:
            return  # no strategy runs on the market yet, or already waited out at this point
        deadline = loop.time() + wait
        while last < candle_open:
            if loop.time() > deadline:
                self._stalled[key] = last
                self.stalls += 1
                _log.warning("deciding exits from the candle queue: the strategies' signals stopped advancing",
                             exchange=key[0], symbol=key[1], timeframe=key[2], waiting_for=candle_open.isoformat(),
                             signals_decided_through=last.isoformat(), waited_seconds=wait)
                return
            async with waiting_on_other_messages():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._decided.wait(), _POLL)
            if stopping():
                return
            self._decided.clear()
            now = await self._ledger.latest_signal_candle(*key)
            if now is not None and now != last:
                last, deadline = now, loop.time() + wait

    async def _enforce(self, entry: OpenEntry, candle_open: datetime) -> None:
        step = timedelta(seconds=timeframe_seconds(entry.timeframe))
        # A later BUY added to the position moves its average entry: walked again from the start.
        key = f"{entry.opening_order}@{entry.entry_price}"
        walked = self._walked.get(key)
        if walked is not None:
            start, state = walked[0] + step, walked[1]
        else:
            start, state = held_from(entry), enter(entry.entry_price, await self._entry_atr(entry))
        if start > candle_open:
            return
        held = await self._store.candles_between(entry.exchange, entry.symbol, entry.timeframe, start, candle_open + _ONE_MS)
        while held:
            index, hit, before = first_exit(entry.exits, state, (_bar(c) for c in held))
            if index is None or hit is None:
                self._walked[key] = (held[-1].open_time, before)
                return
            candle = held[index]
            signal = exit_signal(entry, candle, hit, source=self._source)
            decision = await self._ledger.decision(signal.message_id)
            if decision is None:
                await self._decide(signal)
                self.exits_decided += 1
                decision = await self._ledger.decision(signal.message_id)
            if decision is not None and decision.decision is DecisionKind.APPROVED:
                self._walked.pop(key, None)
                return  # the SELL closes the position (its report settles it)
            # Refused (e.g. under the minimum notional, stale): held on, watched from the next candle.
            state = advance(before, _bar(candle))
            self._walked[key] = (candle.open_time, state)
            held = held[index + 1 :]

    async def _entry_atr(self, entry: OpenEntry) -> Decimal | None:
        """The ATR stored for the entry signal's candle (only ``stop_loss_atr`` needs it)."""
        if entry.exits.stop_loss_atr is None:
            return None
        snapshots = await self._store.indicators_between(
            entry.exchange, entry.symbol, entry.timeframe, entry.entry_candle, entry.entry_candle + _ONE_MS
        )
        atr = snapshots[-1].indicators.atr if snapshots else None
        return atr if atr is not None and atr > 0 else None


def _bar(candle: Candle) -> Bar:
    return Bar(candle.open, candle.high, candle.low, candle.close)

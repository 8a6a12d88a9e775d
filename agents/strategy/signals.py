"""From decisions to Signal messages: the on-change rule and the message itself (pure).

On-change suppression is kept per (strategy_id, exchange, symbol, timeframe): the agent holds
one history per (exchange, symbol, timeframe) and runs each strategy instance on it, and a
decision is published only when its side differs from the same strategy's decision on the
previous candle of that history (``change_at``; the same rule as ``on_change`` over a whole
run). A repeated BUY is therefore not sent again, and HOLD counts as a side: BUY -> HOLD is
published, so every change of mind is on the bus and auditable.

Because "the last emitted side" is re-derived from the history instead of being remembered,
a restarted agent (history warmed from InfluxDB) or a redelivered snapshot reaches exactly the
same verdict, and ``Signal.caused_by`` gives the same message id — a duplicate is recognisable
downstream and nothing is lost or invented.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import Decision, Strategy
from protocol import IndicatorSnapshot, Signal, SignalsDone
from protocol.exits import ExitSettings

__all__ = ["SOURCE", "build_signal", "change_at", "signals_done", "wire_decimal"]

SOURCE: Final = "strategy"
# Indicator values this close to zero would need an exponent the wire format refuses (±60);
# they are zero for every trading purpose.
_TINY: Final = 1e-30


def wire_decimal(value: float | None) -> Decimal | None:
    """A float as it travels on the bus: Decimal(repr(value)), which converts back to the
    identical float (decision 0005); None (warming up) and non-finite values stay None."""
    if value is None or not math.isfinite(value):
        return None
    if value != 0.0 and abs(value) < _TINY:
        return Decimal(0)
    return Decimal(repr(float(value)))


def change_at(strategy: Strategy, history: IndicatorHistory, i: int) -> Decision | None:
    """The decision at row ``i`` when it changes side from row ``i - 1``, else None.

    Row 0 of a complete history (the series' first candle) is a change. Where the history does
    not start at the series' first candle, a row closer to its start than the strategy's
    lookback cannot be judged the way the uninterrupted run judged it, so it yields None.
    """
    if not history.complete and i - 1 < strategy.lookback:
        return None
    current = strategy.decide(history, i)
    if i == 0:
        return current
    previous = strategy.decide(history, i - 1)
    return current if previous.side is not current.side else None


def build_signal(
    snapshot: IndicatorSnapshot, *, strategy_id: str, kind: str, decision: Decision, exits: ExitSettings | None = None
) -> Signal:
    """The Signal for ``decision`` on ``snapshot``'s candle.

    Its id derives from the snapshot's id and the strategy id, so the same decision on the same
    snapshot is always the same message (and, downstream, the same client order id).
    ``exits``: the instance's protective exits, carried so the risk manager watches the
    position a BUY opens with them (decision 0023); left off when none is set.
    """
    return Signal.caused_by(
        snapshot,
        id_parts=(strategy_id,),
        source=SOURCE,
        strategy_id=strategy_id,
        strategy=kind,
        exchange=snapshot.exchange,
        symbol=snapshot.symbol,
        timeframe=snapshot.timeframe,
        side=decision.side,
        confidence=decision.confidence,
        reason=decision.reason,
        indicators={name: wire_decimal(value) for name, value in decision.used.items()},
        candle_time=snapshot.candle_time,
        price=snapshot.close,
        exits=exits if exits is not None and exits.enabled else None,
    )


def signals_done(snapshot: IndicatorSnapshot, published: int) -> SignalsDone:
    """The marker after ``snapshot``'s signals (decision 0028); its id derives from the
    snapshot's, so a redelivered snapshot publishes the same marker again."""
    return SignalsDone.caused_by(
        snapshot,
        id_parts=("signals-done",),
        source=SOURCE,
        exchange=snapshot.exchange,
        symbol=snapshot.symbol,
        timeframe=snapshot.timeframe,
        candle_time=snapshot.candle_time,
        signals=published,
    )

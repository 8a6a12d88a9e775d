"""What the account already holds and has in flight, as the risk checks need it.

``holdings`` is pure (ledger views in, figures out); ``approved_for_candle`` is the one audit
query the duplicate check needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.risk_manager.metrics import PositionView, exposure
from infra.db.ledger import DecisionKind, jsonable
from infra.db.models import RiskDecision
from protocol import Side, Signal

__all__ = ["Holdings", "approved_for_candle", "holdings"]

_ZERO = Decimal(0)


class _Position(PositionView, Protocol):
    @property
    def exchange(self) -> str: ...


class _Reservation(Protocol):
    """What is read of an open reservation (``ReservationView`` and ``OpenBuy`` fit)."""

    @property
    def strategy_id(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def remaining(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class Holdings:
    """Inputs of the position, exposure and sizing checks for one strategy and symbol.

    ``sellable``: the strategy's position minus what its open SELLs already reserve.
    ``has_exposure``: it holds the symbol or has an open BUY for it.
    ``open_positions``: (strategy, symbol) pairs holding something or with an open BUY.
    Exposures are in quote: positions at mark plus what open BUYs still reserve.
    """

    sellable: Decimal
    has_exposure: bool
    open_positions: int
    symbol_exposure: Decimal
    total_exposure: Decimal


def holdings(
    positions: Iterable[_Position],
    reservations: Iterable[_Reservation],
    marks: Mapping[str, Decimal],
    *,
    strategy_id: str,
    exchange: str,
    symbol: str,
) -> Holdings:
    """Aggregate ledger views; ``marks`` maps base assets to prices (UnpricedAsset if one is missing)."""
    positions = [p for p in positions if p.quantity != _ZERO]
    open_reservations = list(reservations)
    key = (strategy_id, exchange, symbol)
    pending_buys = [r for r in open_reservations if r.side is Side.BUY]
    owned = {(p.strategy_id, p.exchange, p.symbol) for p in positions}
    busy = owned | {(r.strategy_id, r.exchange, r.symbol) for r in pending_buys}
    by_symbol = exposure(positions, marks)
    for r in pending_buys:
        by_symbol[r.symbol] = by_symbol.get(r.symbol, _ZERO) + r.remaining
    held = sum((p.quantity for p in positions if (p.strategy_id, p.exchange, p.symbol) == key), _ZERO)
    selling = sum(
        (r.remaining for r in open_reservations if r.side is Side.SELL and (r.strategy_id, r.exchange, r.symbol) == key),
        _ZERO,
    )
    return Holdings(
        sellable=max(held - selling, _ZERO),
        has_exposure=key in busy,
        open_positions=len(busy),
        symbol_exposure=by_symbol.get(symbol, _ZERO),
        total_exposure=sum(by_symbol.values(), _ZERO),
    )


async def approved_for_candle(sessions: async_sessionmaker[AsyncSession], signal: Signal) -> bool:
    """True if another signal of the same strategy, symbol, side and candle was approved.

    Reads the candle time the audit recorded under ``inputs.signal`` (see ``rules._inputs``).
    """
    recorded = RiskDecision.inputs["signal"]
    statement = (
        select(func.count())
        .select_from(RiskDecision)
        .where(
            RiskDecision.strategy_id == signal.strategy_id,
            RiskDecision.symbol == signal.symbol,
            RiskDecision.side == signal.side.value,
            RiskDecision.decision == DecisionKind.APPROVED.value,
            RiskDecision.signal_id != signal.message_id,
            recorded["candle_time"].astext == jsonable(signal.candle_time),
            recorded["exchange"].astext == signal.exchange,
        )
    )
    async with sessions() as session:
        return bool(await session.scalar(statement))

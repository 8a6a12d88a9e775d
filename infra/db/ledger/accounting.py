"""Pure position accounting for long-only spot strategies (no I/O; unit tested).

Rules (all in Decimal):

- A BUY of ``q`` for quote ``c`` moves the average entry to ``(Q * avg + c) / (Q + q)``.
- A SELL of ``q`` for quote ``p`` realises ``p - avg * q`` (that is ``(price - avg) * q``);
  the average entry is unchanged, and None once flat. Selling more than the position is
  refused (:class:`LedgerError`): a long-only strategy cannot go short, and a SELL larger than
  what the strategy holds means it sold another strategy's coins.
- ``realised_pnl`` excludes fees; fees accumulate in ``fees_paid`` in the quote currency.
- A fee paid in the base asset is a disposal of that base at the fill price: the quantity
  drops by the fee, its PnL against the average entry is realised and its quote value is
  added to ``fees_paid``. This keeps ``realised_pnl - fees_paid`` equal to the true cash
  result once the position is closed, whatever mix of fee currencies was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from infra.db.ledger.types import LedgerError, PositionView
from protocol.envelope import Message
from protocol.messages import PositionUpdate

__all__ = ["FLAT", "PositionState", "buy", "pay_base_fee", "pay_quote_fee", "position_update", "sell"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionState:
    """The accounting fields of a position."""

    quantity: Decimal
    average_entry_price: Decimal | None
    realised_pnl: Decimal
    fees_paid: Decimal


FLAT = PositionState(quantity=_ZERO, average_entry_price=None, realised_pnl=_ZERO, fees_paid=_ZERO)


def _positive(name: str, value: Decimal) -> None:
    if value <= 0:
        raise LedgerError(f"{name} must be > 0, got {value}")


def buy(state: PositionState, quantity: Decimal, cost: Decimal) -> PositionState:
    """``state`` after buying ``quantity`` base for ``cost`` quote (fees excluded)."""
    _positive("bought quantity", quantity)
    _positive("cost", cost)
    held_cost = state.quantity * state.average_entry_price if state.average_entry_price else _ZERO
    new_quantity = state.quantity + quantity
    return PositionState(
        quantity=new_quantity,
        average_entry_price=(held_cost + cost) / new_quantity,
        realised_pnl=state.realised_pnl,
        fees_paid=state.fees_paid,
    )


def sell(state: PositionState, quantity: Decimal, proceeds: Decimal) -> PositionState:
    """``state`` after selling ``quantity`` base for ``proceeds`` quote (fees excluded)."""
    _positive("sold quantity", quantity)
    if proceeds < 0:
        raise LedgerError(f"proceeds must be >= 0, got {proceeds}")
    if quantity > state.quantity or state.average_entry_price is None:
        raise LedgerError(f"cannot sell {quantity}: the position holds only {state.quantity}")
    remaining = state.quantity - quantity
    return PositionState(
        quantity=remaining,
        average_entry_price=state.average_entry_price if remaining else None,
        realised_pnl=state.realised_pnl + proceeds - state.average_entry_price * quantity,
        fees_paid=state.fees_paid,
    )


def pay_quote_fee(state: PositionState, fee: Decimal) -> PositionState:
    """``state`` after paying ``fee`` in the quote currency."""
    if fee < 0:
        raise LedgerError(f"fee must be >= 0, got {fee}")
    return PositionState(state.quantity, state.average_entry_price, state.realised_pnl, state.fees_paid + fee)


def pay_base_fee(state: PositionState, fee: Decimal, price: Decimal) -> PositionState:
    """``state`` after paying ``fee`` in the base asset, valued at the fill ``price``."""
    if fee == 0:
        return state
    disposed = sell(state, fee, fee * price)
    return pay_quote_fee(disposed, fee * price)


def position_update(
    position: PositionView,
    *,
    source: str,
    parent: Message | None = None,
    mark_price: Decimal | None = None,
) -> PositionUpdate:
    """The ``portfolio.position`` message for ``position``.

    With ``parent`` (the ExecutionReport that changed it) the message is caused by it and its
    id is deterministic, so a redelivered report re-publishes the identical update. With
    ``mark_price`` the unrealised PnL of the open quantity is included.
    """
    unrealised = None
    if mark_price is not None:
        entry = position.average_entry_price
        unrealised = (mark_price - entry) * position.quantity if entry is not None else _ZERO
    fields = {
        "source": source,
        "strategy_id": position.strategy_id,
        "exchange": position.exchange,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "average_entry_price": position.average_entry_price,
        "realised_pnl": position.realised_pnl,
        "fees_paid": position.fees_paid,
        "mark_price": mark_price,
        "unrealised_pnl": unrealised,
    }
    if parent is None:
        return PositionUpdate(**fields)
    return PositionUpdate.caused_by(parent, id_parts=(position.strategy_id, position.symbol), **fields)

"""Operator commands (control.*): every one carries who asked (``requested_by``) and why
(``reason``), and is applied by an agent that records it in the ledger's ``controls`` table.

Built and published by one module, ``agents.ops.controls``, for the CLI, the API and MCP.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from protocol.enums import ControlKind
from protocol.envelope import Message, MessageKind
from protocol.types import ClientOrderId, ExchangeId, NonEmptyStr, StrategyId, Symbol

__all__ = [
    "CONTROL_CLASSES",
    "CancelOrder",
    "ClosePosition",
    "ControlMessage",
    "EmergencyStop",
    "PauseStrategy",
    "control_kind",
    "control_target",
    "requested_by",
]

_REASON = "Why, for the audit trail."
_BY = "Operator (or automation) that asked."


class EmergencyStop(Message):
    """Command: engage (active=true) or release (active=false) the emergency stop.

    While engaged the risk manager approves nothing and execution places nothing; the
    state survives restarts.
    """

    SCHEMA_NAME: ClassVar[str] = "control.emergency_stop"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    active: bool = Field(description="True engages the stop, false releases it.")
    reason: NonEmptyStr = Field(description=_REASON)
    requested_by: NonEmptyStr = Field(description=_BY)


class CancelOrder(Message):
    """Command to execution: cancel the order with this client_order_id.

    Open orders are cancelled (with their report); an unknown or finished order is recorded
    as refused with the reason.
    """

    SCHEMA_NAME: ClassVar[str] = "control.order.cancel"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    client_order_id: ClientOrderId = Field(description="Order to cancel.")
    reason: NonEmptyStr = Field(description=_REASON)
    # Added after v1 shipped: optional, so a cancel published without it (the risk manager's
    # reconciliation of an expired reservation, or an older publisher) still decodes as v1.
    requested_by: NonEmptyStr | None = Field(
        default=None, description="Operator (or automation) that asked; null: the source agent itself."
    )


class PauseStrategy(Message):
    """Command to the risk manager: pause (paused=true) or resume (paused=false) one strategy
    instance.

    While paused its BUY signals are rejected (STRATEGY_PAUSED); its SELLs (exits) still pass.
    The pause is persisted in the ledger and survives restarts.
    """

    SCHEMA_NAME: ClassVar[str] = "control.strategy.pause"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    strategy_id: StrategyId = Field(description="Strategy instance to pause or resume.")
    paused: bool = Field(description="True pauses the strategy's BUYs, false resumes them.")
    reason: NonEmptyStr = Field(description=_REASON)
    requested_by: NonEmptyStr = Field(description=_BY)


class ClosePosition(Message):
    """Command to the risk manager: close one strategy's position in one symbol.

    Decided like a SELL signal of that strategy at the latest stored price (sized to the whole
    position, reserved, executed), or refused with the risk reason (NO_POSITION,
    EMERGENCY_STOP, ...).
    """

    SCHEMA_NAME: ClassVar[str] = "control.position.close"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    strategy_id: StrategyId = Field(description="Strategy instance whose position is closed.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    exchange: ExchangeId | None = Field(
        default=None, description="Exchange of the position; null: the risk manager's configured exchange."
    )
    reason: NonEmptyStr = Field(description=_REASON)
    requested_by: NonEmptyStr = Field(description=_BY)


ControlMessage = EmergencyStop | CancelOrder | PauseStrategy | ClosePosition
CONTROL_CLASSES: tuple[type[Message], ...] = (EmergencyStop, CancelOrder, PauseStrategy, ClosePosition)


def control_kind(message: ControlMessage) -> ControlKind:
    """What the control asks for, as recorded in the ledger's ``controls`` table."""
    if isinstance(message, EmergencyStop):
        return ControlKind.ENGAGE_STOP if message.active else ControlKind.RELEASE_STOP
    if isinstance(message, PauseStrategy):
        return ControlKind.PAUSE_STRATEGY if message.paused else ControlKind.RESUME_STRATEGY
    if isinstance(message, ClosePosition):
        return ControlKind.CLOSE_POSITION
    if isinstance(message, CancelOrder):
        return ControlKind.CANCEL_ORDER
    raise TypeError(f"{type(message).__name__} is not a control message")


def control_target(message: ControlMessage) -> str:
    """What the control acts on: a client order id, a strategy id, strategy/exchange/symbol,
    or ``*`` (the emergency stop acts on everything)."""
    if isinstance(message, CancelOrder):
        return message.client_order_id
    if isinstance(message, PauseStrategy):
        return message.strategy_id
    if isinstance(message, ClosePosition):
        return " ".join((message.strategy_id, message.exchange or "*", message.symbol))
    if isinstance(message, EmergencyStop):
        return "*"
    raise TypeError(f"{type(message).__name__} is not a control message")


def requested_by(message: ControlMessage) -> str:
    """Who asked: the operator named in the message, else the publishing agent (``source``)."""
    return message.requested_by or message.source

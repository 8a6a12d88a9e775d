"""Operator commands."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from protocol.envelope import Message, MessageKind
from protocol.types import ClientOrderId, NonEmptyStr

__all__ = ["CancelOrder", "EmergencyStop"]


class EmergencyStop(Message):
    """Command: engage (active=true) or release (active=false) the emergency stop.

    While engaged the risk manager approves nothing and execution places nothing; the
    state survives restarts.
    """

    SCHEMA_NAME: ClassVar[str] = "control.emergency_stop"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    active: bool = Field(description="True engages the stop, false releases it.")
    reason: NonEmptyStr = Field(description="Why, for the audit trail.")
    requested_by: NonEmptyStr = Field(description="Operator (or automation) that asked.")


class CancelOrder(Message):
    """Command to execution: cancel the order with this client_order_id."""

    SCHEMA_NAME: ClassVar[str] = "control.order.cancel"
    SCHEMA_VERSION: ClassVar[int] = 1
    KIND: ClassVar[MessageKind] = "command"

    client_order_id: ClientOrderId = Field(description="Order to cancel.")
    reason: NonEmptyStr = Field(description="Why, for the audit trail.")

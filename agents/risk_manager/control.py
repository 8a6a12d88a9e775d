"""Operator control: the `tradebus emergency-stop on|off` command publishes EmergencyStop.

The risk manager persists the stop in the ledger (it survives restarts) and refuses every
signal while it is engaged; execution places nothing while it is engaged.
"""

from __future__ import annotations

import uuid

from infra.bus import Bus, system_topology
from infra.settings import Settings
from protocol import EmergencyStop

__all__ = ["CLI_SOURCE", "emergency_stop_message", "publish_control"]

CLI_SOURCE = "tradebus-cli"


def emergency_stop_message(active: bool, reason: str, requested_by: str) -> EmergencyStop:
    """The command; a fresh message id each time, so engaging twice is two audited requests."""
    return EmergencyStop(source=CLI_SOURCE, active=active, reason=reason, requested_by=requested_by)


async def publish_control(settings: Settings, message: EmergencyStop) -> None:
    """Publish on the bus of ``settings`` and wait for the broker's confirmation."""
    bus = Bus(
        settings.rabbitmq_url.get_secret_value(),
        system_topology(settings.bus_exchange),
        connection_name=f"{CLI_SOURCE}-{uuid.uuid4().hex[:8]}",
        publish_timeout=settings.bus_publish_timeout,
        quorum=settings.bus_quorum_queues,
    )
    async with bus:
        await bus.publish(message)

"""Operator controls: the one way a process builds and publishes one (CLI, API, MCP).

    message = build_control(ControlKind.PAUSE_STRATEGY, strategy_id="rsi-btc",
                            reason="news at 14:00", requested_by="alice", source="api")
    await publish_control(bus, message)      # bus: an open infra.bus.Bus; waits for the confirm
    message.message_id                       # the tracking handle (ledger table ``controls``)

Every control is a bus message (``control.*``) applied by the agents through the same risk path
as everything else: the emergency stop and pause/resume by the risk manager (the stop also by
execution), a close as a SELL decided by the risk manager, a cancel by execution. Each applying
agent records it once in the ledger's ``controls`` table (APPLIED / REFUSED with the detail); a
publisher never writes the ledger.

``send_control`` is the bounded variant for a command-line process that has no bus open yet: it
publishes only onto an exchange that exists (a `tradebus run` uses a per-run exchange, and a
wrong name would declare a fresh topology nobody consumes) and answers within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from pydantic import ValidationError

from agents.monitor.bus_checks import exchange_exists
from agents.monitor.probes import PROBE_TIMEOUT, RUN_HINT, error_text
from infra.bus import Bus, connect_plain, system_topology
from infra.settings import Settings, redact_url
from protocol.enums import ControlKind
from protocol.messages.control import (
    CancelOrder,
    ClosePosition,
    ControlMessage,
    EmergencyStop,
    PauseStrategy,
    control_kind,
    control_target,
)

__all__ = [
    "CLI_SOURCE",
    "ControlInvalid",
    "ControlKind",
    "ControlMessage",
    "ControlNotSent",
    "build_control",
    "describe",
    "publish_control",
    "send_control",
]

CLI_SOURCE = "tradebus-cli"


class ControlInvalid(ValueError):
    """The control cannot be built (missing target, invalid id or symbol, blank reason)."""


class ControlNotSent(RuntimeError):
    """The control was not confirmed by the broker; the text says why and what to do."""


def _need(value: str | None, name: str, kind: ControlKind) -> str:
    if value is None or not value.strip():
        raise ControlInvalid(f"{kind.value} needs {name}")
    return value.strip()


def build_control(
    kind: ControlKind | str,
    *,
    reason: str,
    requested_by: str,
    source: str = CLI_SOURCE,
    client_order_id: str | None = None,
    strategy_id: str | None = None,
    symbol: str | None = None,
    exchange: str | None = None,
) -> ControlMessage:
    """The control message for ``kind``, validated; a fresh message id each time, so asking twice
    is two audited requests. Raises ControlInvalid with the reason when it cannot be built."""
    try:
        kind = ControlKind(kind)
    except ValueError:
        raise ControlInvalid(f"unknown control {kind!r} (one of {', '.join(ControlKind)})") from None
    common = {"source": source, "reason": reason, "requested_by": requested_by}
    try:
        if kind in (ControlKind.ENGAGE_STOP, ControlKind.RELEASE_STOP):
            return EmergencyStop(active=kind is ControlKind.ENGAGE_STOP, **common)
        if kind is ControlKind.CANCEL_ORDER:
            return CancelOrder(client_order_id=_need(client_order_id, "a client order id", kind), **common)
        if kind in (ControlKind.PAUSE_STRATEGY, ControlKind.RESUME_STRATEGY):
            return PauseStrategy(strategy_id=_need(strategy_id, "a strategy id", kind),
                                 paused=kind is ControlKind.PAUSE_STRATEGY, **common)
        return ClosePosition(strategy_id=_need(strategy_id, "a strategy id", kind),
                             symbol=_need(symbol, "a symbol", kind), exchange=exchange or None, **common)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors())
        raise ControlInvalid(f"invalid {kind.value}: {problems}") from None


def describe(message: ControlMessage) -> str:
    """One line for people: kind, target, who and why, and the tracking id."""
    return (f"{control_kind(message)} {control_target(message)} (reason: {message.reason}; "
            f"by: {message.requested_by or message.source}; id {message.message_id})")


async def publish_control(bus: Bus, message: ControlMessage) -> ControlMessage:
    """Publish on an open bus and wait for the broker's confirm (bounded by the bus's publish
    timeout; PublishFailed otherwise, e.g. when no agent's queue is bound: unroutable)."""
    await bus.publish(message)
    return message


async def _require_exchange(url: str, exchange: str, budget: float) -> None:
    hint = f"is RabbitMQ running at {redact_url(url)}? (RABBITMQ_URL)"
    try:
        connection = await connect_plain(url, budget, "tradebus-control")
    except TimeoutError:
        raise ControlNotSent(f"the broker did not answer within {budget:.0f}s; {hint}") from None
    except Exception as exc:
        raise ControlNotSent(f"broker unreachable ({error_text(exc)}); {hint}") from None
    try:
        found = await asyncio.wait_for(exchange_exists(connection, exchange), budget)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), budget)
    if not found:
        raise ControlNotSent(f"no bus exchange `{exchange}`: is the system running? {RUN_HINT}")


async def send_control(settings: Settings, message: ControlMessage, budget: float = PROBE_TIMEOUT) -> ControlMessage:
    """Open a bus on ``settings``, publish (confirmed), close: within ``budget`` + the publish
    timeout, or ControlNotSent saying why."""
    url = settings.rabbitmq_url.get_secret_value()
    await _require_exchange(url, settings.bus_exchange, budget)
    total = budget + settings.bus_publish_timeout

    async def publish() -> None:
        bus = Bus(url, system_topology(settings.bus_exchange, settings.bus_partitions), connection_name=f"{CLI_SOURCE}-{uuid.uuid4().hex[:8]}",
                  publish_timeout=settings.bus_publish_timeout, quorum=settings.bus_quorum_queues)
        async with bus:
            await publish_control(bus, message)

    try:
        await asyncio.wait_for(publish(), total)
    except TimeoutError:
        raise ControlNotSent(f"no confirmation from the broker within {total:.0f}s: the control may not be in force; "
                             "check with `tradebus control list` or `tradebus reality-check` and send it again") from None
    except Exception as exc:
        raise ControlNotSent(f"not published ({error_text(exc)})") from None
    return message

"""The emergency-stop command's bus work, bounded: it answers within seconds, or says why not.

The stop is published only onto an exchange that exists: publishing onto a wrong name (a
`tradebus run` uses a per-run exchange) would declare a fresh topology nobody consumes and
report success for a stop that reaches no risk manager.
"""

from __future__ import annotations

import asyncio
import contextlib

from agents.monitor.bus_checks import exchange_exists
from agents.monitor.probes import PROBE_TIMEOUT, RUN_HINT, error_text
from infra.bus import connect_plain
from infra.settings import Settings, redact_url
from protocol import EmergencyStop

__all__ = ["ControlNotSent", "send_emergency_stop"]


class ControlNotSent(RuntimeError):
    """The stop was not confirmed by the broker; the text says why and what to do."""


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


async def send_emergency_stop(settings: Settings, message: EmergencyStop, budget: float = PROBE_TIMEOUT) -> None:
    """Publish the stop (confirmed by the broker) within ``budget`` + the publish timeout."""
    from agents.risk_manager.control import publish_control

    url = settings.rabbitmq_url.get_secret_value()
    await _require_exchange(url, settings.bus_exchange, budget)
    total = budget + settings.bus_publish_timeout
    try:
        await asyncio.wait_for(publish_control(settings, message), total)
    except TimeoutError:
        raise ControlNotSent(f"no confirmation from the broker within {total:.0f}s: the stop may not be in force; "
                             "check with `tradebus reality-check` and send it again") from None
    except Exception as exc:
        raise ControlNotSent(f"not published ({error_text(exc)})") from None

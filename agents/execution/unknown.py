"""Resolving an order whose outcome is UNKNOWN without ever sending it twice.

A send that ended without an answer (timeout, 5xx, Binance -1007) may still be acted on by the
exchange for as long as the request's receive window lasts. A lookup that finds nothing during
that time proves nothing, so the order is looked up by its client order id until the window
(``ExchangeAdapter.unknown_window``, measured from the last send) has surely passed; only then
does "not found" mean "never placed" (and the order may be sent again, or called CANCELED).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from infra.exchanges.adapter import ExchangeAdapter, OrderState
from infra.logging import get_logger
from protocol import OrderStatus

__all__ = ["Lookup", "LookupOutcome", "look_up", "not_found_is_proof"]

_log = get_logger(component="execution_unknown")
POLL_SECONDS = 1.0


class LookupOutcome(StrEnum):
    """What a lookup proved."""

    FOUND = "found"  # the exchange has the order: ``state``
    NEVER_PLACED = "never_placed"  # not found, and the exchange can no longer act on a send
    UNDECIDED = "undecided"  # not found yet, the window is still open (stopping, or no wait)


@dataclass(frozen=True, slots=True)
class Lookup:
    outcome: LookupOutcome
    state: OrderState | None = None


def not_found_is_proof(status: OrderStatus, submit_attempts: int, last_send: datetime, now: datetime, window: float) -> bool:
    """Whether "not found" proves the order was never placed.

    Only an UNKNOWN order is in doubt; one never sent (``submit_attempts == 0``) cannot exist,
    and one sent more than ``window`` seconds ago can no longer be acted on by the exchange."""
    if status is not OrderStatus.UNKNOWN or submit_attempts == 0:
        return True
    return now - last_send > timedelta(seconds=window)


async def look_up(
    adapter: ExchangeAdapter,
    client_order_id: str,
    symbol: str,
    *,
    status: OrderStatus,
    submit_attempts: int,
    last_send: datetime,
    sleep: Callable[[float], Awaitable[bool]],
    wait: bool = True,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Lookup:
    """Look the order up until it is found or "not found" is proof (bounded by the window).

    ``sleep(seconds)`` returns True when the agent is stopping (then UNDECIDED). ``wait=False``
    asks once. Adapter errors (UNKNOWN, rate limits) propagate to the caller."""
    while True:
        state = await adapter.fetch(client_order_id, symbol)
        if state is not None:
            return Lookup(LookupOutcome.FOUND, state)
        if not_found_is_proof(status, submit_attempts, last_send, now(), adapter.unknown_window):
            return Lookup(LookupOutcome.NEVER_PLACED)
        if not wait:
            return Lookup(LookupOutcome.UNDECIDED)
        _log.info("unknown_order_not_found_yet", client_order_id=client_order_id,
                  window_seconds=adapter.unknown_window, since_send=(now() - last_send).total_seconds())
        if await sleep(POLL_SECONDS):
            return Lookup(LookupOutcome.UNDECIDED)

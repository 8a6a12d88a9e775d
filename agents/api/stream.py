"""The live stream: a bounded ring of recent bus events with increasing ids, served as
Server-Sent Events that resume after a reconnect (``Last-Event-ID``).

Ids start at the service's start time in milliseconds times 1000 and grow by one per event, so
a restarted service hands out ids larger than any it gave before: a client resuming from an id
the ring no longer holds (evicted, or from the previous process) gets a ``gap`` event instead of
a silent hole, and reloads the REST state.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["EVENT_TYPES", "EventRing", "StreamEvent", "sse_events"]

EVENT_TYPES = (
    "candle", "indicators", "signal", "order", "rejection", "report", "position",
    "heartbeat", "risk_metrics", "control",
)
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    type: str
    data: str  # the JSON text of the event, encoded once for every client

    def frame(self) -> str:
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.data}\n\n"


class EventRing:
    """The newest ``capacity`` events; ``wait_after`` wakes readers when one arrives."""

    def __init__(self, capacity: int = 5000, first_id: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._events: deque[StreamEvent] = deque(maxlen=capacity)
        self._next_id = first_id if first_id is not None else int(time.time() * 1000) * 1000
        self._first_id = self._next_id
        self._arrived = asyncio.Event()

    @property
    def last_id(self) -> int:
        """The id of the newest event handed out (one below the first id before any)."""
        return self._next_id - 1

    def append(self, event_type: str, payload: dict[str, Any]) -> StreamEvent:
        event_id = self._next_id
        self._next_id += 1
        body = {"id": event_id, "type": event_type, "received_at": datetime.now(UTC).isoformat(), **payload}
        event = StreamEvent(event_id, event_type, json.dumps(body, separators=(",", ":"), default=str))
        self._events.append(event)
        # Wake every waiting reader, then arm the event again for the next arrival.
        self._arrived.set()
        self._arrived = asyncio.Event()
        return event

    def after(self, last_id: int) -> tuple[list[StreamEvent], StreamEvent | None]:
        """Buffered events with id > ``last_id``, and a ``gap`` event first when some of the
        events after ``last_id`` are no longer buffered (evicted, or handed out by an earlier
        process). The gap event has no id of its own: it must not move the client's cursor."""
        first_available = self._events[0].id if self._events else self._next_id
        ahead = last_id > self.last_id  # an id this process never handed out
        events = list(self._events) if ahead else [event for event in self._events if event.id > last_id]
        if not ahead and last_id + 1 >= first_available:
            return events, None
        gap = {"type": "gap", "last_event_id": last_id, "first_available": first_available,
               # Not an id of this process: the service restarted since (or the clock went back).
               "restarted": ahead or last_id < self._first_id - 1}
        return events, StreamEvent(0, "gap", json.dumps(gap, separators=(",", ":")))

    async def wait_after(self, last_id: int, timeout: float) -> None:
        """Return when an event newer than ``last_id`` exists, or after ``timeout`` seconds."""
        if self.last_id > last_id:
            return
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            return


def _gap_frame(gap: StreamEvent) -> str:
    return f"event: gap\ndata: {gap.data}\n\n"


async def sse_events(
    ring: EventRing, last_id: int | None, types: Collection[str] | None, *, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[str]:
    """SSE frames: replay after ``last_id`` (or a gap), then live events; a comment line every
    ``keepalive`` seconds of silence keeps proxies from closing the connection."""
    yield "retry: 2000\n\n"  # EventSource reconnects after 2 s (and sends Last-Event-ID)
    cursor = ring.last_id if last_id is None else last_id
    if last_id is not None:
        events, gap = ring.after(last_id)
        if gap is not None:
            yield _gap_frame(gap)
            cursor = events[0].id - 1 if events else ring.last_id
    while True:
        events, gap = ring.after(cursor)
        if gap is not None:  # this client fell behind the ring while it was being served
            yield _gap_frame(gap)
        for event in events:
            cursor = event.id
            if types is None or event.type in types:
                yield event.frame()
        before = ring.last_id
        await ring.wait_after(cursor, keepalive)
        if ring.last_id == before:
            yield ": keepalive\n\n"

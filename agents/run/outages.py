"""Outages of the run's services as `tradebus run` sees them: which service, since when, the last
error, and how many probes failed. Pure bookkeeping; the probes live in services.py.

A run must ride out a broker, Postgres or InfluxDB restart (issue 14): the panel shows the outage
while it lasts, the completion verdict waits for it to end (a replay is not "fully processed"
while a store cannot be reached), and the agents get a moment to catch up after it ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Outage", "Outages"]


@dataclass
class Outage:
    """One service that does not answer: since when (wall clock and monotonic), the latest error."""

    service: str
    since: datetime
    since_monotonic: float
    last_error: str
    failures: int = 1

    def describe(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        return (f"{self.service} unreachable since {self.since:%H:%M:%S} ({now - self.since_monotonic:.0f}s, "
                f"{self.failures} failed probes): {self.last_error}")


class Outages:
    """Current outages by service, and when the latest one ended.

    ``on_change`` gets one line per transition (down, back) for the run's event list."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self.current: dict[str, Outage] = {}
        self.total = 0
        self.last_recovery_monotonic: float | None = None
        self._on_change = on_change

    def failed(self, service: str, error: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        outage = self.current.get(service)
        if outage is None:
            self.current[service] = Outage(service, datetime.now(UTC), now, error)
            self.total += 1
            self._emit(f"{service} unreachable: {error}")
        else:
            outage.failures += 1
            outage.last_error = error

    def answered(self, service: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        outage = self.current.pop(service, None)
        if outage is not None:
            self.last_recovery_monotonic = now
            self._emit(f"{service} back after {now - outage.since_monotonic:.0f}s ({outage.failures} failed probes)")

    def recovered_for(self, now: float | None = None) -> float | None:
        """Seconds since the latest outage ended; None if there never was one."""
        if self.last_recovery_monotonic is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_recovery_monotonic

    def describe(self, now: float | None = None) -> list[str]:
        return [outage.describe(now) for outage in self.current.values()]

    def _emit(self, text: str) -> None:
        if self._on_change is not None:
            self._on_change(text)

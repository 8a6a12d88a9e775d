"""How a consumer retries: the bounds, the backoff, and what it reports while it waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


def retry_delay(attempt: int, initial: float = 0.2, cap: float = 5.0) -> float:
    """Backoff before the next try after ``attempt`` failed tries: 0.2 s, 0.4 s, 0.8 s ... capped."""
    if attempt < 1:
        return 0.0
    # min() before the power would overflow for a long outage (attempt 2000 is a float overflow).
    return float(min(initial * 2 ** min(attempt - 1, 64), cap))


@dataclass(frozen=True)
class RetryPolicy:
    """The consumer's bounds (DESIGN.md, "Faults").

    - ``max_attempts``: permanent handler failures before a message is dead-lettered
      (``BUS_MAX_ATTEMPTS``). Transient failures do not count: they are retried without a limit.
    - ``backoff_initial`` / ``backoff_cap``: the wait between tries doubles from the first to the
      cap (``BUS_RETRY_BACKOFF_INITIAL`` / ``BUS_RETRY_BACKOFF_CAP``).
    - ``max_crashes``: how often a message may be found to have been in handling when its consumer
      process died before it is dead-lettered (``BUS_MAX_CRASHES``; infra.bus.journal).
    """

    max_attempts: int = 5
    backoff_initial: float = 0.2
    backoff_cap: float = 5.0
    max_crashes: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_crashes < 1:
            raise ValueError("max_attempts and max_crashes must be >= 1")
        if not 0 < self.backoff_initial <= self.backoff_cap:
            raise ValueError("backoff must satisfy 0 < initial <= cap")

    def delay(self, failed_tries: int) -> float:
        """Seconds to wait after ``failed_tries`` consecutive failed tries of one message."""
        return retry_delay(failed_tries, self.backoff_initial, self.backoff_cap)


def retrying_problem(queue: str, reason: str, since: datetime, others: int = 0) -> str:
    """The health problem a consumer reports while it waits out a transient failure, e.g.
    ``retrying q: Postgres unreachable (ConnectionRefusedError) since 06:31:02``."""
    text = f"retrying {queue}: {reason} since {since.strftime('%H:%M:%S')}"
    return f"{text} (+{others} more messages)" if others else text

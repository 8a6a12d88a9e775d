"""How alerts are sent: once per key within a window, at most N per minute per target, retried
with a bounded, capped exponential backoff (pure: the clock is passed in)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Deduplicator", "RateLimiter", "RetryPlan", "retryable_status"]


class Deduplicator:
    """Remembers each alert key for ``window`` seconds: a key seen again within it is a duplicate.

    Held in the process: a restarted notifier may repeat an alert once, which is better than a
    shared store the trading path would have to wait for. Bounded by ``capacity`` keys (the
    oldest forgotten first), so a flood of distinct keys cannot grow it without limit."""

    def __init__(self, window: float, capacity: int = 100_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, key: str, now: float) -> bool:
        """True when ``key`` was not seen within the window (and records it)."""
        self._expire(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.window:
                return
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)


class RateLimiter:
    """A token bucket: ``per_minute`` sends a minute on average, bursts of up to ``per_minute``."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._tokens = self.capacity
        self._at = now

    def wait_time(self, now: float) -> float:
        """Seconds until a send is allowed (0: now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> bool:
        """Use one send if one is available now."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now


@dataclass(frozen=True)
class RetryPlan:
    """At most ``attempts`` tries; the wait before try n+1 is ``initial × 2^(n-1)``, capped, or
    what the target asked for (Retry-After / Telegram's retry_after), also capped."""

    attempts: int
    initial: float
    cap: float

    def delay(self, failed_attempts: int, asked: float | None = None) -> float | None:
        """Seconds to wait after ``failed_attempts`` failures; None when no try is left."""
        if failed_attempts >= self.attempts:
            return None
        if asked is not None and asked > 0:
            return min(asked, self.cap)
        return min(self.initial * 2 ** (failed_attempts - 1), self.cap)


def retryable_status(status: int) -> bool:
    """A server error, a timeout or a rate limit may pass; any other 4xx will not (bad URL,
    bad token, chat not found): retrying it only repeats the refusal."""
    return status >= 500 or status in (408, 425, 429)

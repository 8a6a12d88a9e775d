"""A circuit breaker for exchange rate limits.

When an exchange says "too many requests", continuing to ask earns an IP ban (Binance answers
418 and bans for minutes to days). The breaker stops all requests of the source for a while
instead: CLOSED -> OPEN after ``failure_threshold`` consecutive rate-limit answers (at once on a
ban), OPEN -> HALF_OPEN after ``reset_timeout``, where exactly one trial call may go out;
its success closes the breaker, its failure opens it again.

Pure state machine: no I/O, no sleeping; time comes from an injectable monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker", "FailureKind"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class FailureKind(StrEnum):
    RATE_LIMIT = "rate_limit"  # HTTP 429: slow down
    BAN = "ban"  # HTTP 418: the IP is banned; stop at once
    NETWORK = "network"  # timeouts, 5xx: not a rate-limit signal, does not trip the breaker


Transition = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """CLOSED / OPEN / HALF_OPEN breaker driven by rate-limit failures."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._open_until = 0.0
        self._trial_started: float | None = None
        self.last_failure: FailureKind | None = None
        self.times_opened = 0

    # --- reading -------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """Current state; an OPEN breaker whose timeout has passed reads as HALF_OPEN."""
        self._refresh()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def retry_in(self) -> float:
        """Seconds until a call may be tried again (0 when one may go now)."""
        self._refresh()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._open_until - self._clock())
        if self._state is BreakerState.HALF_OPEN and self._trial_started is not None:
            # Another caller holds the trial; it is abandoned after reset_timeout.
            return max(0.0, self._trial_started + self.reset_timeout - self._clock())
        return 0.0

    # --- driving -------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a call go out now? In HALF_OPEN only the first caller gets True (the trial)."""
        self._refresh()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return False
        now = self._clock()
        # A trial whose caller never reported (cancelled task) must not wedge the breaker.
        if self._trial_started is None or now - self._trial_started >= self.reset_timeout:
            self._trial_started = now
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: the exchange accepts requests again."""
        self._refresh()
        if self._state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED)
        if self._state is BreakerState.CLOSED:
            self._consecutive = 0
        # In OPEN a success can only be a call that left before the breaker opened: it says
        # nothing about now, so the breaker stays open.

    def record_failure(self, kind: FailureKind | str, retry_after: float | None = None) -> None:
        """A call failed. ``retry_after`` (seconds, from the exchange) lengthens the open time."""
        kind = FailureKind(kind)
        self._refresh()
        if kind is FailureKind.NETWORK:
            # Not a rate-limit signal; in HALF_OPEN free the trial so another call can probe.
            if self._state is BreakerState.HALF_OPEN:
                self._trial_started = None
            return
        self.last_failure = kind
        self._consecutive += 1
        if kind is FailureKind.BAN or self._state is BreakerState.HALF_OPEN:
            self._open(retry_after)
        elif self._state is BreakerState.CLOSED and self._consecutive >= self.failure_threshold:
            self._open(retry_after)
        elif self._state is BreakerState.OPEN and retry_after is not None:
            # A late answer from before the opening may still carry a longer wait.
            self._open_until = max(self._open_until, self._clock() + retry_after)

    # --- internals -----------------------------------------------------------------------
    def _open(self, retry_after: float | None) -> None:
        until = self._clock() + max(self.reset_timeout, retry_after or 0.0)
        if self._state is BreakerState.OPEN:
            # A ban while already open: never shorten an earlier, longer wait.
            self._open_until = max(self._open_until, until)
            return
        self._open_until = until
        self._trial_started = None
        self.times_opened += 1
        self._move(BreakerState.OPEN)

    def _refresh(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._trial_started = None
            self._move(BreakerState.HALF_OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new is BreakerState.CLOSED:
            self._consecutive = 0
            self._trial_started = None
        if old is not new and self._on_transition is not None:
            self._on_transition(old, new)

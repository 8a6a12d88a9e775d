"""Exponential backoff with jitter, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]

# Beyond this many doublings every delay is the cap anyway; stopping early avoids float overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``attempt`` (1-based): ``base * factor**(attempt-1)``, at most
    ``cap``, of which the fraction ``jitter`` is randomised.

    Jitter spreads the retries of many clients (or of several symbols of one source) so they do
    not hit a recovering exchange in lockstep; keeping part of the delay fixed ("equal jitter")
    still guarantees a real pause after every failure."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0 or self.factor < 1:
            raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1 = first retry); never above ``cap``."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        ceiling = min(self.cap, self.base * self.factor**exponent)
        fixed = ceiling * (1 - self.jitter)
        return fixed + self.rng.uniform(0, ceiling - fixed)

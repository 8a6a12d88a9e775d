"""Errors the price store raises. A call either succeeds or raises one of these; none is
swallowed, because a missing price must become a rejection with a reason, never a guess."""

from __future__ import annotations


class PriceStoreError(Exception):
    """InfluxDB refused the request (a 4xx other than 429, or an error inside a query result):
    retrying the same request would fail the same way. Carries Influx's own error text."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PriceStoreUnavailable(PriceStoreError):
    """InfluxDB could not be reached or kept failing (connection error, timeout, 5xx, 429) for
    every allowed attempt. The request may be retried later."""

    def __init__(self, message: str, *, attempts: int, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.attempts = attempts

"""Dedup window, token-bucket rate limit and the bounded retry plan of the alert notifier."""

from __future__ import annotations

import pytest

from agents.notifier.policy import Deduplicator, RateLimiter, RetryPlan, retryable_status


def test_a_key_is_sent_once_within_the_window_and_again_after_it() -> None:
    dedup = Deduplicator(window=60)
    assert dedup.first("fill:a", now=0)
    assert not dedup.first("fill:a", now=59.9)
    assert dedup.first("fill:b", now=10)  # another key is its own alert
    assert dedup.first("fill:a", now=60.1)  # the window is over: sent again
    assert not dedup.first("fill:a", now=61)


def test_the_dedup_memory_is_bounded() -> None:
    dedup = Deduplicator(window=3600, capacity=3)
    for key in "abcd":
        assert dedup.first(key, now=0)
    assert len(dedup) == 3
    assert dedup.first("a", now=1)  # the oldest key was forgotten


def test_a_zero_window_deduplicates_nothing() -> None:
    dedup = Deduplicator(window=0)
    assert dedup.first("k", now=5) and dedup.first("k", now=5)


def test_the_rate_limit_allows_a_burst_then_one_send_per_refill() -> None:
    limiter = RateLimiter(per_minute=3, now=0)
    assert [limiter.take(0) for _ in range(4)] == [True, True, True, False]
    assert limiter.wait_time(0) == pytest.approx(20.0)  # 3 a minute: one every 20 s
    assert not limiter.take(19.9)
    assert limiter.take(20.0)
    assert limiter.wait_time(20.0) == pytest.approx(20.0)


def test_the_rate_limit_bucket_never_holds_more_than_its_burst() -> None:
    limiter = RateLimiter(per_minute=2, now=0)
    assert limiter.take(0) and limiter.take(0)
    # An hour of silence refills two sends, not 120.
    assert [limiter.take(3600) for _ in range(3)] == [True, True, False]


def test_retries_back_off_exponentially_capped_and_bounded() -> None:
    plan = RetryPlan(attempts=5, initial=1.0, cap=5.0)
    assert [plan.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, None]


def test_a_retry_waits_what_the_target_asked_but_never_beyond_the_cap() -> None:
    plan = RetryPlan(attempts=3, initial=1.0, cap=30.0)
    assert plan.delay(1, asked=7) == 7
    assert plan.delay(1, asked=600) == 30.0
    assert plan.delay(3, asked=7) is None


@pytest.mark.parametrize(("status", "retry"), [(500, True), (502, True), (429, True), (408, True),
                                               (400, False), (401, False), (403, False), (404, False)])
def test_only_server_errors_timeouts_and_rate_limits_are_retried(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry

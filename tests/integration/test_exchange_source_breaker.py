"""The rate-limit circuit breaker, backoff and error classification, on a fake clock (pure)."""

from __future__ import annotations

import random

import ccxt.async_support as ccxt
import pytest

from agents.data_collection.exchange import Backoff, BreakerState, CircuitBreaker, FailureKind, failure_kind

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[tuple[BreakerState, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, transitions: list[tuple[BreakerState, BreakerState]]) -> CircuitBreaker:
    return CircuitBreaker(3, 10.0, clock=clock, on_transition=lambda a, b: transitions.append((a, b)))


def test_opens_after_threshold_consecutive_rate_limits(breaker: CircuitBreaker) -> None:
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure(FailureKind.RATE_LIMIT)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure("rate_limit")
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10.0)


def test_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure(FailureKind.RATE_LIMIT)
    breaker.record_failure(FailureKind.RATE_LIMIT)
    breaker.record_success()
    breaker.record_failure(FailureKind.RATE_LIMIT)
    breaker.record_failure(FailureKind.RATE_LIMIT)
    assert breaker.state is BreakerState.CLOSED


def test_ban_opens_at_once(breaker: CircuitBreaker, transitions: list) -> None:
    breaker.record_failure(FailureKind.BAN)
    assert breaker.state is BreakerState.OPEN
    assert transitions == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.last_failure is FailureKind.BAN


def test_network_errors_do_not_trip_it(breaker: CircuitBreaker) -> None:
    for _ in range(10):
        breaker.record_failure(FailureKind.NETWORK)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_half_open_allows_one_trial_then_closes_on_success(
    breaker: CircuitBreaker, clock: FakeClock, transitions: list
) -> None:
    breaker.record_failure(FailureKind.BAN)
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # everyone else waits for its outcome
    assert breaker.retry_in() > 0
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_half_open_failure_opens_again_for_a_full_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.record_failure(FailureKind.BAN)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure(FailureKind.RATE_LIMIT)  # one failure is enough in HALF_OPEN
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(10.0)
    assert breaker.times_opened == 2


def test_network_failure_of_the_trial_frees_the_trial(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.record_failure(FailureKind.BAN)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure(FailureKind.NETWORK)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_abandoned_trial_does_not_wedge_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.record_failure(FailureKind.BAN)
    clock.advance(10)
    assert breaker.allow()  # the caller is cancelled and never reports
    assert not breaker.allow()
    clock.advance(10)
    assert breaker.allow()


def test_retry_after_longer_than_the_timeout_is_honoured(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.record_failure(FailureKind.BAN, retry_after=120)
    clock.advance(60)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(60)
    breaker.record_failure(FailureKind.BAN, retry_after=1)  # never shortens the wait
    assert breaker.retry_in() == pytest.approx(60)


def test_late_success_while_open_keeps_it_open(breaker: CircuitBreaker) -> None:
    breaker.record_failure(FailureKind.BAN)
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    backoff = Backoff(base=1, factor=2, cap=10, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == 10  # no float overflow for huge attempt numbers


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(base=1, factor=2, cap=8, jitter=0.5, rng=random.Random(7))
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(2 <= d <= 4 for d in delays)
    assert len(set(delays)) > 100  # actually randomised


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ccxt.DDoSProtection("binance 418 I'm a Teapot {\"code\":-1003}"), FailureKind.BAN),
        (ccxt.DDoSProtection("binance GET http://x/api/v3/klines 418 I'm a teapot"), FailureKind.BAN),
        (ccxt.DDoSProtection("binance 429 Too Many Requests {\"code\":-1003}"), FailureKind.RATE_LIMIT),
        (ccxt.RateLimitExceeded("kraken 429 Too Many Requests"), FailureKind.RATE_LIMIT),
        (ccxt.ExchangeNotAvailable("binance GET ... 503 Service Unavailable"), FailureKind.NETWORK),
        (ccxt.RequestTimeout("binance GET ..."), FailureKind.NETWORK),
        (ccxt.OperationFailed("binance -1001 internal error"), FailureKind.NETWORK),
        (ccxt.BadSymbol("binance does not have market symbol XYZ/USDT"), None),
        (ValueError("bug"), None),
    ],
)
def test_failure_kind_of_ccxt_errors(error: BaseException, kind: FailureKind | None) -> None:
    assert failure_kind(error) is kind

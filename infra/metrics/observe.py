"""The updates the bus and the agents make to the catalogue's metrics.

Kept apart from the code they observe so each call site is one line, and so the label rules
(a queue without its per-run exchange prefix, enums by their canonical value) live in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import Gauge

from infra.metrics import catalogue as m
from protocol import Candle, ExecutionReport, IndicatorSnapshot, Message, Signal


def queue_label(queue: str, exchange: str) -> str:
    """``risk_manager.signals`` for ``{exchange}.risk_manager.signals``: the exchange of a
    `tradebus run` is named per run, and a label must not change with every run."""
    return queue.removeprefix(f"{exchange}.")


def one_hot(gauge: Gauge, current: str, states: Iterable[str]) -> None:
    """Set ``gauge{state=current}`` to 1 and every other state to 0 (a state as a metric)."""
    for state in states:
        gauge.labels(state=state).set(1 if state == current else 0)


def published(message: Message) -> None:
    """Count one confirmed publish, and the domain figure it carries (candle age, signals)."""
    m.PUBLISHED.labels(schema=message.schema_).inc()
    if isinstance(message, Candle):
        m.CANDLES.labels(symbol=message.symbol).inc()
        m.CANDLE_AGE.labels(symbol=message.symbol).set(
            (datetime.now(UTC) - message.close_time).total_seconds()
        )
    elif isinstance(message, IndicatorSnapshot):
        m.INDICATORS.labels(symbol=message.symbol).inc()
    elif isinstance(message, Signal):
        m.SIGNALS.labels(strategy=message.strategy_id, symbol=message.symbol, side=message.side.value).inc()


class Timer:
    """Monotonic seconds since construction (for histograms observed on several outcomes)."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start


def as_float(value: Decimal | int | float | None) -> float:
    return 0.0 if value is None else float(value)


def risk_decision(outcome: str, reason: str | None = None) -> None:
    """One decision recorded in the audit (count after the commit, never for a replay)."""
    m.RISK_DECISIONS.labels(outcome=outcome, reason=reason or "none").inc()


def risk_account(
    *,
    quote: str,
    equity: Decimal,
    drawdown: Decimal,
    trading_state: str,
    trading_states: Iterable[str],
    emergency_stop: bool,
    positions: Iterable[tuple[str, str, Decimal]],
    reservations_held: int,
) -> None:
    """The account figures the risk manager computes each metrics round."""
    m.EQUITY.labels(currency=quote).set(float(equity))
    m.DRAWDOWN.set(float(drawdown))
    one_hot(m.TRADING_STATE, trading_state, trading_states)
    m.EMERGENCY_STOP.set(1 if emergency_stop else 0)
    m.RESERVATIONS_HELD.set(reservations_held)
    for strategy, symbol, quantity in positions:
        m.POSITION.labels(strategy=strategy, symbol=symbol).set(float(quantity))


def order_report(report: ExecutionReport) -> None:
    """One order transition published from execution's outbox (each stored event once)."""
    m.ORDER_TRANSITIONS.labels(status=report.status.value).inc()
    if report.last_fill_quantity > 0:
        m.FILLS.labels(symbol=report.symbol, side=report.side.value).inc()
    if report.fee > 0 and report.fee_currency:
        m.FEES.labels(currency=report.fee_currency).inc(float(report.fee))


def exchange_error(api: str, error: BaseException | str) -> None:
    """A failed exchange request; ``kind`` is the error's class (or a failure kind's name)."""
    kind = error if isinstance(error, str) else type(error).__name__
    m.EXCHANGE_ERRORS.labels(api=api, kind=kind).inc()

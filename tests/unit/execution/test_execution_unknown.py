"""An UNKNOWN order is never sent again on one "not found": only once the exchange's receive
window (from the last send) has passed does "not found" prove it was never placed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.execution.unknown import not_found_is_proof
from protocol import OrderStatus

SENT = datetime(2026, 1, 1, tzinfo=UTC)


def test_not_found_inside_the_window_proves_nothing() -> None:
    assert not not_found_is_proof(OrderStatus.UNKNOWN, 1, SENT, SENT + timedelta(seconds=9), window=10)
    assert not_found_is_proof(OrderStatus.UNKNOWN, 1, SENT, SENT + timedelta(seconds=10.5), window=10)


def test_an_order_never_sent_or_not_in_doubt_needs_no_window() -> None:
    assert not_found_is_proof(OrderStatus.UNKNOWN, 0, SENT, SENT, window=10)
    assert not_found_is_proof(OrderStatus.NEW, 1, SENT, SENT, window=10)

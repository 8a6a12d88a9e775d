"""A signal from a candle that closed too long ago is refused (STALE_SIGNAL): a backfill after
downtime must never trade history. An unacknowledged ledger drift stops BUYs (LEDGER_DRIFT)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from agents.risk_manager.settings import RiskSettings
from protocol import RejectionReason
from tests.unit.risk_manager.test_risk_rules import LIMITS, NOW, reason_of, signal, snapshot


def test_a_signal_from_a_candle_closed_over_one_timeframe_ago_is_stale() -> None:
    # 15m candles: the candle closed at NOW; deciding 16 minutes later is past one timeframe.
    late = snapshot(now=NOW + timedelta(minutes=16), price_time=NOW + timedelta(minutes=16))
    assert reason_of(signal(), late) is RejectionReason.STALE_SIGNAL
    assert reason_of(signal("SELL"), late) is RejectionReason.STALE_SIGNAL


def test_a_signal_within_one_timeframe_of_its_close_is_decided() -> None:
    on_time = snapshot(now=NOW + timedelta(minutes=14), price_time=NOW + timedelta(minutes=14))
    assert reason_of(signal(), on_time) is None


def test_the_maximum_signal_age_is_configurable() -> None:
    limits = replace(LIMITS, max_signal_age=timedelta(seconds=30))
    late = snapshot(now=NOW + timedelta(seconds=31), price_time=NOW + timedelta(seconds=31))
    assert reason_of(signal(), late, limits) is RejectionReason.STALE_SIGNAL
    settings = RiskSettings.model_validate({"RISK_MAX_SIGNAL_AGE": "45"})
    assert settings.limits().max_signal_age == timedelta(seconds=45)
    assert RiskSettings.model_validate({}).limits().max_signal_age is None


def test_an_unacknowledged_ledger_drift_stops_buys_but_not_sells() -> None:
    drifted = snapshot(ledger_drift="USDT: ledger 10000, exchange 9000")
    assert reason_of(signal(), drifted) is RejectionReason.LEDGER_DRIFT
    assert reason_of(signal("SELL"), drifted) is None

"""Which messages become alerts, with which key, and the heartbeat and risk state watchers."""

from __future__ import annotations

from decimal import Decimal

from agents.notifier.alerts import AgentWatch, Kind, RiskWatch, Severity, report_alert, stop_alert
from protocol import EmergencyStop, HealthState, OrderRefusal, OrderStatus, TradingState
from tests.support.alert_messages import beat, metrics, report

D = Decimal


def test_a_fill_is_an_alert_keyed_by_its_trade() -> None:
    alert = report_alert(report(OrderStatus.FILLED, "0.05", "0.05", trade_id="t-9"))
    assert alert is not None and alert.kind is Kind.FILL and alert.severity is Severity.INFO
    assert alert.key == "fill:tb-0123456789abcdef:t-9"
    assert alert.title == "BUY 0.05 BTC/USDT @ 50000 (FILLED, strategy trend)"
    assert alert.fields["fee"] == "2.5 USDT" and alert.fields["filled"] == "0.05/0.05"


def test_a_report_without_a_fill_is_no_alert() -> None:
    assert report_alert(report(OrderStatus.NEW)) is None
    assert report_alert(report(OrderStatus.REJECTED, reason="insufficient funds: needs 5, 1 free")) is None


def test_executions_refusal_of_an_order_without_reservation_is_a_critical_alert() -> None:
    reason = OrderRefusal.NO_RESERVATION.reason("the ledger holds no reservation for tb-0123456789abcdef")
    alert = report_alert(report(OrderStatus.REJECTED, reason=reason))
    assert alert is not None and alert.kind is Kind.ORDER_REFUSED and alert.severity is Severity.CRITICAL
    assert alert.key == "refused:tb-0123456789abcdef" and alert.fields["reason"] == reason


def test_emergency_stop_engaged_and_released_are_distinct_alerts() -> None:
    on = stop_alert(EmergencyStop(source="operator", active=True, reason="exchange outage", requested_by="ops"))
    off = stop_alert(EmergencyStop(source="operator", active=False, reason="back", requested_by="ops"))
    assert on.severity is Severity.CRITICAL and "ENGAGED by ops: exchange outage" in on.title
    assert off.severity is Severity.WARNING and on.key != off.key


def test_degraded_is_alerted_on_the_transition_only_then_recovery() -> None:
    watch = AgentWatch(down_after=3, interval=1)
    assert watch.on_heartbeat(beat("execution", HealthState.HEALTHY), now=0) == []
    degraded = watch.on_heartbeat(beat("execution", HealthState.DEGRADED, problems="1 refused order(s)"), now=1)
    assert [a.kind for a in degraded] == [Kind.AGENT_DEGRADED] and "1 refused order(s)" in degraded[0].title
    assert watch.on_heartbeat(beat("execution", HealthState.DEGRADED, problems="1 refused order(s)"), now=2) == []
    recovered = watch.on_heartbeat(beat("execution", HealthState.HEALTHY), now=3)
    assert [a.kind for a in recovered] == [Kind.AGENT_RECOVERED]


def test_an_agent_silent_for_n_intervals_is_down_once_then_back() -> None:
    watch = AgentWatch(down_after=3, interval=2)
    watch.on_heartbeat(beat("strategy", HealthState.HEALTHY), now=100)
    assert watch.missing(now=105.9) == []
    down = watch.missing(now=106)
    assert [a.kind for a in down] == [Kind.AGENT_DOWN] and down[0].key == "agent:strategy:down:i1"
    assert watch.missing(now=200) == []  # one alert per outage
    back = watch.on_heartbeat(beat("strategy", HealthState.HEALTHY), now=201)
    assert [a.kind for a in back] == [Kind.AGENT_RECOVERED] and "back" in back[0].title


def test_an_agent_that_said_stopping_is_reported_stopped_not_down() -> None:
    watch = AgentWatch(down_after=3, interval=1)
    watch.on_heartbeat(beat("data_collection", HealthState.STOPPING), now=0)
    [stopped] = watch.missing(now=3)
    assert stopped.severity is Severity.INFO and stopped.key == "agent:data_collection:stopped:i1"
    assert "stopped" in stopped.title


def test_the_notifier_does_not_watch_itself() -> None:
    watch = AgentWatch(down_after=3, interval=1, ignore=frozenset({"notifier"}))
    assert watch.on_heartbeat(beat("notifier", HealthState.DEGRADED, problems="x"), now=0) == []
    assert watch.missing(now=100) == []


def test_ledger_drift_in_executions_heartbeat_is_alerted_and_its_resolution() -> None:
    watch = AgentWatch(down_after=3, interval=1)
    assert watch.on_heartbeat(beat("execution", HealthState.HEALTHY, ledger_drift="none"), now=0) == []
    drift = watch.on_heartbeat(beat("execution", HealthState.HEALTHY, ledger_drift="USDT ledger 100 exchange 90"), 1)
    assert [a.kind for a in drift] == [Kind.LEDGER_DRIFT] and drift[0].severity is Severity.CRITICAL
    assert watch.on_heartbeat(beat("execution", HealthState.HEALTHY, ledger_drift="USDT ledger 100 exchange 90"), 2) == []
    acked = watch.on_heartbeat(beat("execution", HealthState.HEALTHY, ledger_drift="acknowledged: USDT ..."), 3)
    assert [a.kind for a in acked] == [Kind.LEDGER_DRIFT] and acked[0].severity is Severity.WARNING


def test_drawdown_pause_and_trading_state_changes() -> None:
    watch = RiskWatch(max_drawdown=D("0.2"))
    assert watch.on_metrics(metrics("0.1")) == []
    paused = watch.on_metrics(metrics("0.2"))
    assert [a.kind for a in paused] == [Kind.DRAWDOWN_PAUSE] and paused[0].key == "drawdown:paused"
    assert watch.on_metrics(metrics("0.25")) == []
    resumed = watch.on_metrics(metrics("0.05", TradingState.REDUCING))
    assert [(a.kind, a.key) for a in resumed] == [
        (Kind.DRAWDOWN_PAUSE, "drawdown:resumed"), (Kind.TRADING_STATE, "trading_state:REDUCING")]
    assert [a.key for a in watch.on_metrics(metrics("0.05"))] == ["trading_state:ACTIVE"]

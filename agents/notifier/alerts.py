"""What is worth telling an operator, from the messages on the bus (pure: no I/O, clock passed in).

One :class:`Alert` per event: a fill, a refused order, an emergency stop request, a dead letter,
and the transitions the watchers below see in a stream of heartbeats and risk metrics (an agent
DEGRADED, down, recovered; ledger drift; trading paused by drawdown or the trading state).
Each alert has a ``key``: the same key within the dedup window is sent once (policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from protocol import (
    EmergencyStop,
    ExecutionReport,
    HealthState,
    Heartbeat,
    OrderRefusal,
    OrderStatus,
    RiskMetrics,
    TradingState,
)

__all__ = [
    "Alert",
    "AgentWatch",
    "Kind",
    "RiskWatch",
    "Severity",
    "dead_letter_alert",
    "report_alert",
    "stop_alert",
]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Kind(StrEnum):
    FILL = "fill"
    ORDER_REFUSED = "order_refused"
    EMERGENCY_STOP = "emergency_stop"
    AGENT_DEGRADED = "agent_degraded"
    AGENT_DOWN = "agent_down"
    AGENT_RECOVERED = "agent_recovered"
    DEAD_LETTER = "dead_letter"
    DRAWDOWN_PAUSE = "drawdown_pause"
    TRADING_STATE = "trading_state"
    LEDGER_DRIFT = "ledger_drift"


@dataclass(frozen=True)
class Alert:
    """One notification: ``title`` is one line, ``fields`` the figures behind it."""

    key: str
    kind: Kind
    severity: Severity
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None


_REFUSALS = tuple(f"{code.value}:" for code in OrderRefusal)


def report_alert(report: ExecutionReport) -> Alert | None:
    """A fill (the report announces one) or execution's refusal of a request without a
    reservation (REJECTED with an OrderRefusal code: only a forged or corrupted order has none)."""
    base = {
        "symbol": report.symbol, "side": report.side.value, "strategy": report.strategy_id,
        "client_order_id": report.client_order_id, "status": report.status.value,
    }
    if report.status is OrderStatus.REJECTED and (report.reason or "").startswith(_REFUSALS):
        return Alert(
            key=f"refused:{report.client_order_id}",
            kind=Kind.ORDER_REFUSED,
            severity=Severity.CRITICAL,
            title=f"order REFUSED by execution: {report.side.value} {report.quantity} {report.symbol} "
                  f"(strategy {report.strategy_id})",
            fields={**base, "quantity": str(report.quantity), "reason": report.reason or ""},
            at=report.produced_at,
            correlation_id=str(report.correlation_id),
        )
    if report.last_fill_quantity <= 0:
        return None
    fee = f"{report.fee} {report.fee_currency}" if report.fee_currency else "0"
    return Alert(
        # One trade is one alert, however often its report is redelivered or re-published.
        key=f"fill:{report.client_order_id}:{report.trade_id or report.cumulative_filled_quantity}",
        kind=Kind.FILL,
        severity=Severity.INFO,
        title=f"{report.side.value} {report.last_fill_quantity} {report.symbol} @ {report.last_fill_price} "
              f"({report.status.value}, strategy {report.strategy_id})",
        fields={
            **base, "quantity": str(report.last_fill_quantity), "price": str(report.last_fill_price),
            "filled": f"{report.cumulative_filled_quantity}/{report.quantity}", "fee": fee,
        },
        at=report.event_time,
        correlation_id=str(report.correlation_id),
    )


def stop_alert(stop: EmergencyStop) -> Alert:
    """An emergency stop engaged or released (the request on the bus; the agents apply it)."""
    word = "ENGAGED" if stop.active else "released"
    return Alert(
        key=f"stop:{stop.message_id}",
        kind=Kind.EMERGENCY_STOP,
        severity=Severity.CRITICAL if stop.active else Severity.WARNING,
        title=f"emergency stop {word} by {stop.requested_by}: {stop.reason}",
        fields={"active": str(stop.active).lower(), "requested_by": stop.requested_by, "reason": stop.reason},
        at=stop.produced_at,
        correlation_id=str(stop.correlation_id),
    )


def dead_letter_alert(queue: str, message_id: str, schema: str, kind: str, error: str, routing_key: str) -> Alert:
    """A message that reached a dead-letter queue: nothing more happens to it without a person."""
    return Alert(
        key=f"dead_letter:{queue}:{message_id}",
        kind=Kind.DEAD_LETTER,
        severity=Severity.CRITICAL,
        title=f"message dead-lettered from {queue} ({kind}): {error[:200]}",
        fields={
            "queue": queue, "message_id": message_id, "schema": schema, "error_kind": kind,
            "error": error[:500], "routing_key": routing_key,
            "requeue": f"tradebus dead-letters requeue {queue}",
        },
    )


_NO_DRIFT = ("none", "unchecked")


@dataclass
class _Seen:
    health: HealthState
    instance_id: str
    last_seen: float
    down: bool = False
    drift: str | None = None


class AgentWatch:
    """Agent health from heartbeats: DEGRADED, down (no beat for ``down_after`` intervals),
    recovered, and ledger drift (execution's ``ledger_drift`` detail). Transitions only: a
    DEGRADED agent beating every second is one alert, not one per beat."""

    def __init__(self, down_after: float, interval: float, ignore: frozenset[str] = frozenset()) -> None:
        self.down_after = down_after
        self.interval = interval
        self.ignore = ignore
        self.agents: dict[str, _Seen] = {}

    def on_heartbeat(self, beat: Heartbeat, now: float) -> list[Alert]:
        if beat.agent in self.ignore:
            return []
        alerts: list[Alert] = []
        seen = self.agents.get(beat.agent)
        problems = beat.detail.get("problems", "")
        if seen is not None and seen.down:
            alerts.append(self._alert(beat.agent, Kind.AGENT_RECOVERED, Severity.WARNING,
                                      f"agent {beat.agent} is back ({beat.health.value}, instance {beat.instance_id})",
                                      f"back:{beat.instance_id}", {"health": beat.health.value}))
        if beat.health is HealthState.DEGRADED and (seen is None or seen.health is not HealthState.DEGRADED):
            alerts.append(self._alert(beat.agent, Kind.AGENT_DEGRADED, Severity.CRITICAL,
                                      f"agent {beat.agent} DEGRADED: {problems or 'no reason given'}",
                                      f"DEGRADED:{problems[:200]}", {"problems": problems}))
        elif (beat.health is HealthState.HEALTHY and seen is not None and seen.health is HealthState.DEGRADED
              and not seen.down):
            alerts.append(self._alert(beat.agent, Kind.AGENT_RECOVERED, Severity.WARNING,
                                      f"agent {beat.agent} recovered (HEALTHY)", "HEALTHY", {"health": "HEALTHY"}))
        drift = self._drift(beat, seen)
        if drift is not None:
            alerts.append(drift)
        self.agents[beat.agent] = _Seen(
            health=beat.health, instance_id=beat.instance_id, last_seen=now,
            drift=beat.detail.get("ledger_drift", seen.drift if seen else None),
        )
        return alerts

    def _drift(self, beat: Heartbeat, seen: _Seen | None) -> Alert | None:
        value = beat.detail.get("ledger_drift")
        if value is None:
            return None
        drifted = value not in _NO_DRIFT and not value.startswith("acknowledged")
        before = seen.drift if seen is not None else None
        was_drifted = before is not None and before not in _NO_DRIFT and not before.startswith("acknowledged")
        if drifted and value != before:
            return self._alert(beat.agent, Kind.LEDGER_DRIFT, Severity.CRITICAL,
                               f"ledger drift: the exchange and the ledger disagree ({value[:300]}); "
                               "new BUYs stopped until `tradebus drift ack`", f"drift:{value[:200]}",
                               {"drift": value})
        if was_drifted and not drifted:
            return self._alert(beat.agent, Kind.LEDGER_DRIFT, Severity.WARNING,
                               f"ledger drift resolved ({value[:300]})", f"drift-resolved:{value[:200]}",
                               {"drift": value})
        return None

    def missing(self, now: float) -> list[Alert]:
        """Agents silent for ``down_after`` heartbeat intervals: one alert each until they beat again.
        The key names the silent process, so a second outage (a new instance) is not a duplicate."""
        alerts: list[Alert] = []
        for agent, seen in self.agents.items():
            silent = now - seen.last_seen
            if not seen.down and silent >= self.down_after * self.interval:
                seen.down = True
                figures = {"silent_seconds": f"{silent:.0f}", "last_health": seen.health.value}
                if seen.health is HealthState.STOPPING:
                    # It said goodbye: stopped on purpose (an operator, the end of a replay) or
                    # by its supervisor; worth knowing, not an outage. A crash sends no STOPPING.
                    alerts.append(self._alert(agent, Kind.AGENT_DOWN, Severity.INFO,
                                              f"agent {agent} stopped (its last heartbeat said STOPPING)",
                                              f"stopped:{seen.instance_id}", figures))
                    continue
                alerts.append(self._alert(agent, Kind.AGENT_DOWN, Severity.CRITICAL,
                                          f"agent {agent} is DOWN: no heartbeat for {silent:.0f}s "
                                          f"(last state {seen.health.value})", f"down:{seen.instance_id}", figures))
        return alerts

    @staticmethod
    def _alert(agent: str, kind: Kind, severity: Severity, title: str, key: str, fields: dict[str, str]) -> Alert:
        return Alert(key=f"agent:{agent}:{key}", kind=kind, severity=severity, title=title,
                     fields={"agent": agent, **fields})


class RiskWatch:
    """Trading paused: drawdown at or past the risk manager's pause threshold, or the trading
    state leaving ACTIVE (REDUCING: no new BUYs; HALTED: nothing) — and the way back."""

    def __init__(self, max_drawdown: Decimal) -> None:
        self.max_drawdown = max_drawdown
        self.paused = False
        self.state = TradingState.ACTIVE

    def on_metrics(self, metrics: RiskMetrics) -> list[Alert]:
        alerts: list[Alert] = []
        paused = metrics.drawdown >= self.max_drawdown
        figures = {"drawdown": str(metrics.drawdown), "threshold": str(self.max_drawdown),
                   "equity": f"{metrics.equity} {metrics.quote_asset}"}
        if paused != self.paused:
            self.paused = paused
            alerts.append(Alert(
                key=f"drawdown:{'paused' if paused else 'resumed'}",
                kind=Kind.DRAWDOWN_PAUSE,
                severity=Severity.CRITICAL if paused else Severity.WARNING,
                title=(f"drawdown pause: drawdown {metrics.drawdown:.4f} >= {self.max_drawdown}, new BUYs paused"
                       if paused else f"drawdown {metrics.drawdown:.4f} below {self.max_drawdown} again: BUYs resume"),
                fields=figures, at=metrics.produced_at, correlation_id=str(metrics.correlation_id),
            ))
        if metrics.trading_state is not self.state:
            before, self.state = self.state, metrics.trading_state
            active = metrics.trading_state is TradingState.ACTIVE
            alerts.append(Alert(
                key=f"trading_state:{metrics.trading_state.value}",
                kind=Kind.TRADING_STATE,
                severity=Severity.WARNING if active else Severity.CRITICAL,
                title=f"trading state {before.value} -> {metrics.trading_state.value}",
                fields={**figures, "trading_state": metrics.trading_state.value, "previous": before.value},
                at=metrics.produced_at, correlation_id=str(metrics.correlation_id),
            ))
        return alerts

"""What the run command knows about the pipeline, built from the monitor's view of the bus.

Pure state: fed with heartbeats and events (signals, orders, execution reports, rejections,
positions, risk metrics, gaps), it answers the progress display and the "is the replay fully
processed?" question. Redelivered messages are counted once (sets keyed by message id).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from protocol import (
    DataGap,
    ExecutionReport,
    Heartbeat,
    Message,
    OrderRequest,
    OrderStatus,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
)

# The types the monitor's events queue carries (see infra/bus/topology.py, monitor.events).
EVENT_TYPES: tuple[type[Message], ...] = (
    DataGap,
    RiskRejection,
    PositionUpdate,
    RiskMetrics,
    Signal,
    SignalsDone,  # follows each candle's signals (decision 0028); nothing to count here
    OrderRequest,
    ExecutionReport,
)


@dataclass
class AgentView:
    """The latest heartbeat of one agent and when its consumed count last moved."""

    heartbeat: Heartbeat
    received_monotonic: float
    consumed_changed_monotonic: float


@dataclass
class SymbolCounts:
    """What one symbol's messages added up to (the run panel's per-symbol rows)."""

    signals: int = 0
    orders: int = 0
    fills: int = 0
    filled_notional: Decimal = Decimal(0)


@dataclass
class Progress:
    """Counters of one run; ``record`` is idempotent per message id."""

    agents: dict[str, AgentView] = field(default_factory=dict)
    signals: Counter[str] = field(default_factory=Counter)  # by side
    orders: dict[str, OrderStatus | None] = field(default_factory=dict)  # client_order_id -> last status
    fills: int = 0
    filled_notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    rejections: Counter[str] = field(default_factory=Counter)  # by reason
    gaps: int = 0
    positions: dict[tuple[str, str], PositionUpdate] = field(default_factory=dict)
    metrics: RiskMetrics | None = None
    symbols: dict[str, SymbolCounts] = field(default_factory=dict)  # by symbol, in order first seen
    last_event_monotonic: float = field(default_factory=time.monotonic)
    _seen: set[UUID] = field(default_factory=set)
    _last_report_at: dict[str, object] = field(default_factory=dict)
    _instances: dict[tuple[str, str], AgentView] = field(default_factory=dict)  # (agent, instance id)

    # --- feeding ------------------------------------------------------------------------
    def record(self, message: Message, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if isinstance(message, Heartbeat):
            self._record_heartbeat(message, now)
            return
        if message.message_id in self._seen:
            return
        self._seen.add(message.message_id)
        self.last_event_monotonic = now
        if isinstance(message, Signal):
            self.signals[message.side.value] += 1
            self.of_symbol(message.symbol).signals += 1
        elif isinstance(message, OrderRequest):
            if message.client_order_id not in self.orders:
                self.of_symbol(message.symbol).orders += 1
            self.orders.setdefault(message.client_order_id, None)
        elif isinstance(message, ExecutionReport):
            self._record_report(message)
        elif isinstance(message, RiskRejection):
            self.rejections[message.reason.value] += 1
        elif isinstance(message, PositionUpdate):
            key = (message.strategy_id, message.symbol)
            current = self.positions.get(key)
            if current is None or message.produced_at >= current.produced_at:
                self.positions[key] = message
        elif isinstance(message, RiskMetrics):
            if self.metrics is None or message.produced_at >= self.metrics.produced_at:
                self.metrics = message
        elif isinstance(message, DataGap):
            self.gaps += 1

    def _record_heartbeat(self, beat: Heartbeat, now: float) -> None:
        # Tracked per instance: with several instances of an agent (decision 0025) their beats
        # alternate, and an active instance's count next to a standby's 0 is no movement.
        key = (beat.agent, beat.instance_id)
        view = self._instances.get(key)
        if view is not None and beat.produced_at < view.heartbeat.produced_at:
            return  # an older heartbeat delivered late
        moved = view is None or view.heartbeat.consumed != beat.consumed
        self._instances[key] = AgentView(
            heartbeat=beat,
            received_monotonic=now,
            consumed_changed_monotonic=now if moved else view.consumed_changed_monotonic,  # type: ignore[union-attr]
        )
        # The agent is shown by the instance that moved last (the active one), and counts as
        # heard from when any of its instances beat.
        views = [v for (agent, _), v in self._instances.items() if agent == beat.agent]
        shown = max(views, key=lambda v: (v.consumed_changed_monotonic, v.received_monotonic))
        self.agents[beat.agent] = AgentView(shown.heartbeat, max(v.received_monotonic for v in views),
                                            shown.consumed_changed_monotonic)

    def _record_report(self, report: ExecutionReport) -> None:
        # Reports of one order may arrive out of order after a redelivery: keep the newest event.
        previous_at = self._last_report_at.get(report.client_order_id)
        if previous_at is None or report.event_time >= previous_at:  # type: ignore[operator]
            self.orders[report.client_order_id] = report.status
            self._last_report_at[report.client_order_id] = report.event_time
        else:
            self.orders.setdefault(report.client_order_id, report.status)
        if report.last_fill_quantity > 0 and report.last_fill_price is not None:
            notional = report.last_fill_quantity * report.last_fill_price
            self.fills += 1
            self.filled_notional += notional
            self.fees += report.fee
            counts = self.of_symbol(report.symbol)
            counts.fills += 1
            counts.filled_notional += notional

    def of_symbol(self, symbol: str) -> SymbolCounts:
        return self.symbols.setdefault(symbol, SymbolCounts())

    # --- questions ----------------------------------------------------------------------
    def realised_pnl_of(self, symbol: str) -> Decimal:
        return sum((p.realised_pnl for (_, s), p in self.positions.items() if s == symbol), Decimal(0))

    @property
    def open_orders(self) -> list[str]:
        """Orders without a terminal report yet (no report at all, NEW, PARTIALLY_FILLED, UNKNOWN)."""
        return [cid for cid, status in self.orders.items() if status is None or not status.is_terminal]

    @property
    def realised_pnl(self) -> Decimal:
        return sum((p.realised_pnl for p in self.positions.values()), Decimal(0))

    def detail(self, agent: str, key: str) -> str | None:
        view = self.agents.get(agent)
        return None if view is None else view.heartbeat.detail.get(key)

    def quiet_for(self, now: float | None = None) -> float:
        """Seconds since anything moved: an event, or any agent's consumed count."""
        now = time.monotonic() if now is None else now
        last = max([self.last_event_monotonic, *(v.consumed_changed_monotonic for v in self.agents.values())])
        return now - last

    def reported_since(self, agents: list[str], since: float) -> bool:
        """Every named agent sent a heartbeat after ``since`` (monotonic)."""
        return all(a in self.agents and self.agents[a].received_monotonic > since for a in agents)

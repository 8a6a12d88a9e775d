"""Protocol messages the notifier's tests publish: execution reports and heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from protocol import (
    ExecutionReport,
    HealthState,
    Heartbeat,
    OrderStatus,
    OrderType,
    RiskMetrics,
    Side,
    TradingState,
    WarningLevel,
)

D = Decimal
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def report(status: OrderStatus, cumulative: str = "0", last: str = "0", reason: str | None = None,
           trade_id: str | None = None, client_order_id: str = "tb-0123456789abcdef") -> ExecutionReport:
    """A BUY 0.05 BTC/USDT report; with ``last`` > 0 it announces a fill at 50000."""
    filled = D(last) > 0
    return ExecutionReport(
        source="execution", client_order_id=client_order_id, strategy_id="trend", exchange="binance",
        symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET, status=status, quantity=D("0.05"),
        cumulative_filled_quantity=D(cumulative), last_fill_quantity=D(last),
        last_fill_price=D("50000") if filled else None, average_price=D("50000") if D(cumulative) > 0 else None,
        fee=D("2.5") if filled else D(0), fee_currency="USDT" if filled else None, trade_id=trade_id,
        reason=reason, event_time=NOW,
    )


def beat(agent: str, health: HealthState, **detail: str) -> Heartbeat:
    """A heartbeat of ``agent`` in ``health`` with ``detail``."""
    return Heartbeat(source=agent, agent=agent, instance_id="i1", started_at=NOW, uptime_seconds=1, health=health,
                     consumed=0, published=0, dead_lettered=0, errors=0, detail=detail)


def metrics(drawdown: str, state: TradingState = TradingState.ACTIVE) -> RiskMetrics:
    """The risk manager's metrics with ``drawdown`` and ``state`` (other figures calm)."""
    return RiskMetrics(source="risk_manager", quote_asset="USDT", equity=D("9000"), total_exposure=D(0), heat=D(0),
                       reserved=D(0), available=D("9000"), drawdown=D(drawdown), risk_score=D(10),
                       warning_level=WarningLevel.SAFE, trading_state=state, open_positions=0)

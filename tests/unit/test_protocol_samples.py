"""One valid sample of every registered message, shared by the protocol tests.

A message added to the registry without a sample here fails test_every_type_has_a_sample.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from protocol import (
    MESSAGE_TYPES,
    CancelOrder,
    Candle,
    ClosePosition,
    DataGap,
    EmergencyStop,
    ExecutionReport,
    Heartbeat,
    IndicatorSnapshot,
    Indicators,
    Message,
    OrderRequest,
    PauseStrategy,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
    client_order_id_for,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SIGNAL_ID = UUID("12345678-1234-5678-1234-567812345678")
COID = client_order_id_for(SIGNAL_ID)


def candle_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": "data_collection",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1m",
        "open_time": T0,
        "close_time": T0 + timedelta(minutes=1),
        "open": Decimal("42000.1"),
        "high": Decimal("42150.25"),
        "low": Decimal("41990"),
        "close": Decimal("42100.5"),
        "volume": Decimal("12345.123456789"),
    }
    return fields | overrides


def order_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": "risk_manager",
        "signal_id": SIGNAL_ID,
        "client_order_id": COID,
        "strategy_id": "rsi-btc",
        "exchange": "paper",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": Decimal("0.1"),
        "limit_price": Decimal("42000"),
        "reference_price": Decimal("42100.5"),
        "reference_time": datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        "reserved_asset": "USDT",
        "reserved_amount": Decimal("4200.0042"),
        "expires_at": T0 + timedelta(minutes=5),
    }
    return fields | overrides


def report_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": "execution",
        "client_order_id": COID,
        "exchange_order_id": "ex-1",
        "strategy_id": "rsi-btc",
        "exchange": "paper",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "order_type": "LIMIT",
        "status": "PARTIALLY_FILLED",
        "quantity": Decimal("0.3"),
        "cumulative_filled_quantity": Decimal("0.1"),
        "last_fill_quantity": Decimal("0.1"),
        "last_fill_price": Decimal("42000"),
        "average_price": Decimal("42000"),
        "fee": Decimal("0.0042"),
        "fee_currency": "USDT",
        "trade_id": "t-1",
        "event_time": T0,
    }
    return fields | overrides


def _samples() -> dict[type[Message], Callable[[], Message]]:
    return {
        Candle: lambda: Candle(**candle_fields()),
        DataGap: lambda: DataGap(
            source="data_collection", exchange="binance", symbol="ETH/USDT", timeframe="15m",
            gap_start=T0, gap_end=T0 + timedelta(hours=1), missing_candles=4, filled=False,
        ),
        IndicatorSnapshot: lambda: IndicatorSnapshot(
            source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="1m",
            candle_time=T0, close=Decimal("42100.5"),
            indicators=Indicators(rsi=Decimal("28.123456789"), macd=Decimal("-0.1"), vwap=None),
            extra={"rsi_7": Decimal("21.5"), "donchian_upper_20": Decimal("43000.25")},
        ),
        Signal: lambda: Signal(
            source="strategy", strategy_id="rsi-btc", strategy="rsi", exchange="binance",
            symbol="BTC/USDT", timeframe="1m", side="BUY", confidence=0.75,
            reason="RSI 28.1 < 30", indicators={"rsi": Decimal("28.1"), "sma": None},
            candle_time=T0, price=Decimal("42100.5"),
        ),
        SignalsDone: lambda: SignalsDone(
            source="strategy", exchange="binance", symbol="BTC/USDT", timeframe="1m", candle_time=T0, signals=1,
        ),
        OrderRequest: lambda: OrderRequest(**order_fields()),
        RiskRejection: lambda: RiskRejection(
            source="risk_manager", signal_id=SIGNAL_ID, strategy_id="rsi-btc",
            symbol="BTC/USDT", side="HOLD", reason="HOLD_SIGNAL", detail="signal is HOLD",
        ),
        ExecutionReport: lambda: ExecutionReport(**report_fields()),
        PositionUpdate: lambda: PositionUpdate(
            source="risk_manager", strategy_id="rsi-btc", exchange="paper", symbol="BTC/USDT",
            quantity=Decimal("0.1"), average_entry_price=Decimal("42000"),
            realised_pnl=Decimal("-12.5"), fees_paid=Decimal("0.0042"),
            mark_price=Decimal("42100"), unrealised_pnl=Decimal("10"),
        ),
        RiskMetrics: lambda: RiskMetrics(
            source="risk_manager", quote_asset="USDT", equity=Decimal("10000.01"),
            total_exposure=Decimal("4210"), heat=Decimal("0.421"), reserved=Decimal("100"),
            available=Decimal("5690"), drawdown=Decimal("0.02"), risk_score=Decimal("35.5"),
            warning_level="SAFE", trading_state="ACTIVE", open_positions=1,
        ),
        EmergencyStop: lambda: EmergencyStop(
            source="operator", active=True, reason="exchange incident", requested_by="alice"
        ),
        CancelOrder: lambda: CancelOrder(source="operator", client_order_id=COID, reason="stale", requested_by="alice"),
        PauseStrategy: lambda: PauseStrategy(
            source="api", strategy_id="rsi-btc", paused=True, reason="news at 14:00", requested_by="alice"
        ),
        ClosePosition: lambda: ClosePosition(
            source="api", strategy_id="rsi-btc", symbol="BTC/USDT", exchange="paper", reason="flatten", requested_by="bob"
        ),
        Heartbeat: lambda: Heartbeat(
            source="execution", agent="execution", instance_id="host-1:123", started_at=T0,
            uptime_seconds=12.5, health="HEALTHY", consumed=10, published=9, dead_lettered=0,
            errors=0, detail={"mode": "paper"},
        ),
    }


SAMPLES = _samples()


def sample(cls: type[Message]) -> Message:
    """A fresh valid instance of ``cls``; KeyError when the type has no sample yet."""
    return SAMPLES[cls]()


def test_every_type_has_a_sample() -> None:
    missing = [name for name, cls in MESSAGE_TYPES.items() if cls not in SAMPLES]
    assert not missing, f"add a sample for {missing}"

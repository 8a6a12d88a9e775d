"""Response and request models of the console API: typed, so the OpenAPI document says what
each route answers. Money, prices and quantities are Decimals (JSON strings, exact), as on the bus.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from infra.db.controls import ControlView

T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(ApiModel, Generic[T]):
    """One page of a list, newest first unless the route says otherwise."""

    items: list[T]
    total: int
    limit: int
    offset: int


# --------------------------------------------------------------------------- service and run


class Health(ApiModel):
    status: Literal["ok", "degraded"]
    bus: bool
    postgres: bool
    influxdb: bool
    stream_listening: bool


class WhoAmI(ApiModel):
    role: Literal["read", "operator"]


class ApiBinding(ApiModel):
    host: str
    port: int
    cors_origins: list[str]


class RunInfo(ApiModel):
    """The run's identity and settings; passwords are redacted, tokens never shown."""

    environment: str
    trading_mode: str
    data_source: str
    exchange: str
    symbols: list[str]
    timeframe: str
    bus_exchange: str
    database_url: str
    influxdb_url: str
    influxdb_database: str
    replay_speed: str
    api: ApiBinding
    started_at: datetime
    version: str


# --------------------------------------------------------------------------- agents and queues


class AgentHealth(ApiModel):
    agent: str
    instance_id: str
    health: str
    problems: str
    last_seen: datetime
    age_seconds: float
    stale: bool
    uptime_seconds: float
    consumed: int
    published: int
    dead_lettered: int
    errors: int


class Agents(ApiModel):
    agents: list[AgentHealth]
    heard_since: datetime


class QueueInfo(ApiModel):
    name: str
    consumer: str
    exists: bool
    depth: int | None
    consumers: int | None
    dead_letters: int | None


class Queues(ApiModel):
    queues: list[QueueInfo]


class DeadLetterOut(ApiModel):
    message_id: str
    schema_: str = Field(alias="schema", serialization_alias="schema")
    kind: str
    error: str
    attempts: str
    dead_lettered_at: str
    routing_key: str

    model_config = ConfigDict(frozen=True, populate_by_name=True)


class DeadLetterQueueOut(ApiModel):
    queue: str
    count: int
    sample: list[DeadLetterOut]


class DeadLetters(ApiModel):
    queues: list[DeadLetterQueueOut]


# --------------------------------------------------------------------------- account


class BalanceOut(ApiModel):
    asset: str
    total: Decimal
    available: Decimal
    reserved: Decimal


class Balances(ApiModel):
    balances: list[BalanceOut]


class PositionOut(ApiModel):
    strategy_id: str
    exchange: str
    symbol: str
    quantity: Decimal
    average_entry_price: Decimal | None
    realised_pnl: Decimal
    fees_paid: Decimal
    updated_at: datetime | None
    mark_price: Decimal | None
    mark_time: datetime | None
    unrealised_pnl: Decimal | None
    price_note: str | None = Field(description="why there is no mark price (no price is ever invented)")


class Positions(ApiModel):
    positions: list[PositionOut]


class RiskStateOut(ApiModel):
    trading_state: str
    trading_state_reason: str | None
    emergency_stop: bool
    emergency_reason: str | None
    changed_by: str | None
    changed_at: datetime
    peak_equity: Decimal | None


class StrategyPnl(ApiModel):
    strategy_id: str
    realised_pnl: Decimal
    fees_paid: Decimal
    net_realised: Decimal


class Pnl(ApiModel):
    realised_pnl: Decimal
    fees_paid: Decimal
    net_realised: Decimal
    unrealised_pnl: Decimal | None = Field(description="null when an open position has no stored price")
    by_strategy: list[StrategyPnl]


class EquityPoint(ApiModel):
    time: datetime
    net_realised: Decimal
    drawdown: Decimal


class EquityCurve(ApiModel):
    points: list[EquityPoint]
    max_drawdown: Decimal


# --------------------------------------------------------------------------- orders, fills, decisions


class OrderOut(ApiModel):
    client_order_id: str
    exchange_order_id: str | None
    strategy_id: str
    exchange: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    status: str
    filled: Decimal
    average_price: Decimal | None
    fees: dict[str, str]
    reason: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    # The protective exit the order is (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP), or null.
    exit_reason: str | None = None


class TransitionOut(ApiModel):
    seq: int
    status: str
    cumulative_filled: Decimal
    last_fill_quantity: Decimal
    last_fill_price: Decimal | None
    average_price: Decimal | None
    fee: Decimal
    fee_currency: str | None
    trade_id: str | None
    reason: str | None
    event_time: datetime
    recorded_at: datetime


class OrderDetail(OrderOut):
    transitions: list[TransitionOut]


class FillOut(ApiModel):
    id: int
    client_order_id: str
    trade_id: str
    exchange: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    strategy_id: str
    filled_at: datetime
    # The protective exit of the fill's order, or null.
    exit_reason: str | None = None


class RejectionCount(ApiModel):
    reason: str
    count: int
    last_at: datetime
    last_detail: str


class RejectionsByReason(ApiModel):
    reasons: list[RejectionCount]


# --------------------------------------------------------------------------- market data and strategies


class CandleOut(ApiModel):
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class IndicatorRow(ApiModel):
    candle_time: datetime
    values: dict[str, Decimal | None]


class CandlesOut(ApiModel):
    symbol: str
    timeframe: str
    exchange: str
    candles: list[CandleOut]
    indicators: list[IndicatorRow]


class SignalOut(ApiModel):
    """A signal as the risk manager decided it (its audit row)."""

    signal_id: str
    strategy_id: str
    symbol: str
    side: str
    decision: str
    reason: str | None
    detail: str
    client_order_id: str | None
    decided_at: datetime


class DecisionOut(SignalOut):
    """A risk decision with every input it used."""

    id: int
    inputs: dict[str, Any]


class Signals(ApiModel):
    signals: list[SignalOut]


class Markers(ApiModel):
    signals: list[SignalOut]
    fills: list[FillOut]


class StrategyOut(ApiModel):
    strategy_id: str
    kind: str
    symbols: list[str]
    timeframe: str
    params: dict[str, Any]
    enabled: bool
    paused: bool = Field(description="paused by an operator control (persisted by the risk manager)")


class Strategies(ApiModel):
    strategies: list[StrategyOut]
    config_file: str


# --------------------------------------------------------------------------- controls


class ControlBody(ApiModel):
    """Who asks and why: every control is recorded with both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(min_length=1, max_length=500, pattern=r"\S", description="why, for the audit trail")
    requested_by: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"\S",
        description="who asks; default: the token's role",
    )


class EmergencyStopBody(ControlBody):
    active: bool = Field(description="true engages the stop, false releases it")


class ClosePositionBody(ControlBody):
    strategy_id: str = Field(min_length=1, max_length=100)
    symbol: str = Field(min_length=3, max_length=40)
    exchange: str | None = Field(default=None, max_length=40)


class ControlAccepted(ApiModel):
    """The control was published and confirmed by the broker; the agents apply it."""

    message_id: str
    control: str
    routing_key: str
    requested_by: str
    reason: str
    published_at: datetime


class Controls(ApiModel):
    """The ledger's record of controls (infra.db.controls.ControlView): who asked, why, the outcome."""

    controls: list[ControlView]

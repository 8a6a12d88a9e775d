"""Every tradebus metric, defined once, in one registry (the catalogue of claudedocs/metrics).

Conventions (tested by tests/unit/metrics/test_metric_names.py): the ``tradebus_`` prefix, base
units (seconds, ratios), counters end in ``_total``, and labels come from a bounded set —
queue, role, symbol, strategy, side, reason, outcome, status, state, kind, currency, schema —
never an order, message or correlation id, whose values grow without bound.

Money figures are floats here: a metric is for watching, the ledger (Decimal) is the truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector

# One registry per process for tradebus's own metrics plus the standard process collector
# (process_start_time_seconds, CPU, memory): the default global registry would also collect
# whatever a library registers there.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Metric families of the standard collectors above; exempt from the tradebus naming rules.
STANDARD_PREFIXES = ("process_", "python_info")

# Handler durations: a candle takes milliseconds, a risk decision with its waits up to seconds.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_CONFIRM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- bus (infra/bus: instrumented once for every process) -----------------------------------
CONSUMED = Counter(
    "tradebus_bus_messages_consumed_total", "Deliveries taken from a queue (redeliveries included).",
    ["queue"], registry=REGISTRY,
)
PUBLISHED = Counter(
    "tradebus_bus_messages_published_total", "Protocol messages published and confirmed, by schema.",
    ["schema"], registry=REGISTRY,
)
RETRIED = Counter(
    "tradebus_bus_messages_retried_total", "Handler retries of a delivery (in place or re-published).",
    ["queue"], registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "tradebus_bus_messages_dead_lettered_total", "Deliveries moved to the dead-letter queue, by kind of error.",
    ["queue", "reason"], registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "tradebus_bus_handler_duration_seconds", "Time one handler call took, by queue and outcome (ok, error).",
    ["queue", "outcome"], buckets=_DURATION_BUCKETS, registry=REGISTRY,
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "tradebus_bus_publish_confirm_seconds", "Time from publish to the broker's confirmation (or failure).",
    ["outcome"], buckets=_CONFIRM_BUCKETS, registry=REGISTRY,
)

# --- agent runtime --------------------------------------------------------------------------
AGENT_HEALTH = Gauge(
    "tradebus_agent_health", "1 for the agent's current health state (STARTING, HEALTHY, DEGRADED, STOPPING).",
    ["state"], registry=REGISTRY,
)
AGENT_START_TIME = Gauge(
    "tradebus_agent_start_time_seconds", "Unix time this agent process started.", registry=REGISTRY,
)
AGENT_RESTARTS = Gauge(
    "tradebus_agent_restarts",
    "Restarts of this agent by its supervisor (tradebus run) before this process started; 0 under compose, "
    "where changes(tradebus_agent_start_time_seconds[1h]) counts them.",
    registry=REGISTRY,
)
AGENT_HEARTBEATS = Counter(
    "tradebus_agent_heartbeats_total", "Heartbeats published, by the health they reported.",
    ["state"], registry=REGISTRY,
)

# --- market data and analysis ---------------------------------------------------------------
CANDLES = Counter(
    "tradebus_candles_published_total", "Candles published (after InfluxDB stored them).",
    ["symbol"], registry=REGISTRY,
)
CANDLE_AGE = Gauge(
    "tradebus_candle_age_seconds", "Wall time minus the close of the newest candle published (a replay is old).",
    ["symbol"], registry=REGISTRY,
)
INDICATORS = Counter(
    "tradebus_indicator_snapshots_total", "Indicator snapshots published.", ["symbol"], registry=REGISTRY,
)
SIGNALS = Counter(
    "tradebus_signals_total", "Signals published, by strategy, symbol and side.",
    ["strategy", "symbol", "side"], registry=REGISTRY,
)

# --- risk -----------------------------------------------------------------------------------
RISK_DECISIONS = Counter(
    "tradebus_risk_decisions_total",
    "Risk decisions recorded in the audit (risk_decisions), by outcome and reason ('none' unless rejected).",
    ["outcome", "reason"], registry=REGISTRY,
)
RESERVATIONS_HELD = Gauge(
    "tradebus_reservations_held", "Open (HELD) balance reservations.", registry=REGISTRY,
)
EQUITY = Gauge(
    "tradebus_equity", "Account equity in the quote currency, at the latest marks.", ["currency"], registry=REGISTRY,
)
DRAWDOWN = Gauge(
    "tradebus_drawdown_ratio", "Drawdown from the peak equity, 0 to 1.", registry=REGISTRY,
)
POSITION = Gauge(
    "tradebus_position_quantity", "Open position quantity (base units), by strategy and symbol.",
    ["strategy", "symbol"], registry=REGISTRY,
)
TRADING_STATE = Gauge(
    "tradebus_trading_state", "1 for the current trading state (ACTIVE, REDUCING, HALTED).",
    ["state"], registry=REGISTRY,
)
EMERGENCY_STOP = Gauge(
    "tradebus_emergency_stop", "1 while the emergency stop is engaged.", registry=REGISTRY,
)

# --- execution and exchanges ----------------------------------------------------------------
ORDERS = Counter(
    "tradebus_orders_total", "Order requests execution recorded as new orders (rows of the orders table).",
    ["symbol"], registry=REGISTRY,
)
ORDER_TRANSITIONS = Counter(
    "tradebus_order_transitions_total", "Order state transitions reported, by the status reached.",
    ["status"], registry=REGISTRY,
)
ORDERS_REFUSED = Counter(
    "tradebus_orders_refused_total", "Order requests refused for want of a matching reservation, by code.",
    ["reason"], registry=REGISTRY,
)
FILLS = Counter(
    "tradebus_fills_total", "Fills reported, by symbol and side.", ["symbol", "side"], registry=REGISTRY,
)
FEES = Counter(
    "tradebus_fees_paid_total", "Trading fees paid, in units of the fee currency.", ["currency"], registry=REGISTRY,
)
EXCHANGE_ERRORS = Counter(
    "tradebus_exchange_request_errors_total",
    "Failed exchange requests, by API (orders, market_data) and kind of failure.",
    ["api", "kind"], registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "tradebus_exchange_circuit_state", "1 for the market-data circuit breaker's state (closed, open, half_open).",
    ["state"], registry=REGISTRY,
)

"""String enums with exactly one canonical spelling (upper case).

Input in another case ("buy", "Filled") is normalised to the canonical member; anything else
is refused. Nothing else is aliased: a second spelling ("CANCELLED") would be a second
contract that every consumer has to know about.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ControlKind",
    "ControlOutcome",
    "HealthState",
    "OrderRefusal",
    "OrderStatus",
    "OrderType",
    "RejectionReason",
    "Side",
    "SignalSide",
    "TimeInForce",
    "TradingState",
    "WarningLevel",
]


class CanonicalEnum(StrEnum):
    """StrEnum whose lookup by value ignores case and surrounding whitespace."""

    @classmethod
    def _missing_(cls, value: object) -> CanonicalEnum | None:
        if isinstance(value, str):
            wanted = value.strip().upper()
            for member in cls:
                if member.value == wanted:
                    return member
        return None


class Side(CanonicalEnum):
    """Direction of an order or fill."""

    BUY = "BUY"
    SELL = "SELL"


class SignalSide(CanonicalEnum):
    """What a strategy recommends; HOLD is published so the decision is auditable."""

    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class OrderType(CanonicalEnum):
    """Order type sent to the exchange."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(CanonicalEnum):
    """How long an order rests on the book."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(CanonicalEnum):
    """Lifecycle state of an order as last reported by the exchange.

    UNKNOWN means the outcome of a request could not be established (timeout, 5xx); it is
    not terminal, so the order must be queried by client_order_id before any retry.
    """

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True when no further fills or transitions can happen."""
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class RejectionReason(CanonicalEnum):
    """Why the risk manager refused a signal; every refusal carries one."""

    EMERGENCY_STOP = "EMERGENCY_STOP"
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    STALE_PRICE = "STALE_PRICE"
    NO_PRICE = "NO_PRICE"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    HOLD_SIGNAL = "HOLD_SIGNAL"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    SYMBOL_EXPOSURE_LIMIT = "SYMBOL_EXPOSURE_LIMIT"
    TOTAL_EXPOSURE_LIMIT = "TOTAL_EXPOSURE_LIMIT"
    HOURLY_ORDER_LIMIT = "HOURLY_ORDER_LIMIT"
    DAILY_ORDER_LIMIT = "DAILY_ORDER_LIMIT"
    MIN_ORDER_INTERVAL = "MIN_ORDER_INTERVAL"
    DRAWDOWN_PAUSE = "DRAWDOWN_PAUSE"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    PRICE_COLLAR = "PRICE_COLLAR"
    DUPLICATE_SIGNAL = "DUPLICATE_SIGNAL"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    NO_POSITION = "NO_POSITION"
    BELOW_MIN_QUANTITY = "BELOW_MIN_QUANTITY"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    UNKNOWN_MARKET = "UNKNOWN_MARKET"
    STALE_SIGNAL = "STALE_SIGNAL"
    LEDGER_DRIFT = "LEDGER_DRIFT"
    STRATEGY_PAUSED = "STRATEGY_PAUSED"


class OrderRefusal(CanonicalEnum):
    """Why execution refused an OrderRequest without placing it (the REJECTED report's reason
    starts with the code, e.g. ``NO_RESERVATION: ...``).

    Execution places an order only when the ledger holds its reservation: the risk manager
    commits it before publishing the order, so only a forged or corrupted request lacks it.
    """

    NO_RESERVATION = "NO_RESERVATION"  # the ledger has no reservation for the client_order_id
    RESERVATION_NOT_HELD = "RESERVATION_NOT_HELD"  # it exists but no longer holds balance (closed)
    RESERVATION_MISMATCH = "RESERVATION_MISMATCH"  # side, symbol, amount ... differ from the request

    def reason(self, detail: str) -> str:
        """The report's reason text: the code first, so it can be recognised."""
        return f"{self.value}: {detail}"


class TradingState(CanonicalEnum):
    """Risk manager mode: ACTIVE trades, REDUCING only closes exposure, HALTED does nothing."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class WarningLevel(CanonicalEnum):
    """Coarse risk level shown to operators."""

    SAFE = "SAFE"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class HealthState(CanonicalEnum):
    """Self-reported health of an agent process."""

    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"


class ControlKind(CanonicalEnum):
    """What an operator control asks for (control.* messages; the ledger's ``controls.kind``)."""

    ENGAGE_STOP = "ENGAGE_STOP"
    RELEASE_STOP = "RELEASE_STOP"
    CANCEL_ORDER = "CANCEL_ORDER"
    PAUSE_STRATEGY = "PAUSE_STRATEGY"
    RESUME_STRATEGY = "RESUME_STRATEGY"
    CLOSE_POSITION = "CLOSE_POSITION"


class ControlOutcome(CanonicalEnum):
    """What the agent that received a control did with it (the ledger's ``controls.outcome``)."""

    APPLIED = "APPLIED"
    REFUSED = "REFUSED"

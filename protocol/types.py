"""Reusable field types for every message.

Each type is an ``Annotated`` alias that carries its own validation, JSON serialisation and
JSON-schema description, so a model field only has to name it. Decimals travel as JSON
strings: a float on the wire would silently turn 0.1 into 0.1000000000000000055511151231257827.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal, get_args

import annotated_types
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "TIMEFRAMES",
    "AgentName",
    "AssetCode",
    "ClientOrderId",
    "Confidence",
    "ExchangeId",
    "FiniteDecimal",
    "Money",
    "NonEmptyStr",
    "NonNegativeDecimal",
    "Price",
    "Quantity",
    "Ratio",
    "RiskScore",
    "StrategyId",
    "Symbol",
    "Timeframe",
    "TypeLabel",
    "UtcDatetime",
    "split_symbol",
    "timeframe_seconds",
]


class TypeLabel:
    """Names a field type for humans (the message catalogue); pydantic ignores it."""

    def __init__(self, name: str, summary: str) -> None:
        self.name = name
        self.summary = summary

    def __repr__(self) -> str:
        return f"TypeLabel({self.name!r})"


# --------------------------------------------------------------------------- decimals

# Longer inputs are not prices or quantities but an attempt to make Decimal work hard.
_MAX_DECIMAL_CHARS: Final = 100
# Bounds keep every accepted value printable in positional notation (at most ~200 chars)
# and far inside the default decimal context, so arithmetic downstream cannot overflow.
_MAX_DIGITS: Final = 60
_MAX_EXPONENT: Final = 60
# Plain ASCII notation only: Decimal() would also accept "1_000" and non-ASCII digits.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_WIRE_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"


def _to_finite_decimal(value: Any, label: str) -> Decimal:
    """Convert accepted inputs to a finite Decimal, refusing anything ambiguous."""
    if isinstance(value, bool):
        # bool is an int subclass; True as a price is always a bug upstream.
        raise ValueError(f"{label} must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{label} must be a finite number, got {value!r}")
        # str() gives the shortest repr that round-trips, so 0.1 stays 0.1.
        result = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_DECIMAL_CHARS:
            raise ValueError(f"{label} has more than {_MAX_DECIMAL_CHARS} characters")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{label} must be a decimal number, got {value!r}") from None
        if result.is_finite() and not _DECIMAL_TEXT.fullmatch(text):
            raise ValueError(f"{label} must be a plain decimal number, got {value!r}")
    else:
        raise ValueError(f"{label} must be a decimal number (string), got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{label} must be a finite number, got {value!r}")
    # One as_tuple(): it builds a named tuple in Python, on every Decimal every message carries.
    _, digits, raw_exponent = result.as_tuple()
    exponent = int(raw_exponent)  # an int: result is finite
    if len(digits) > _MAX_DIGITS or not -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT:
        raise ValueError(
            f"{label} is out of range (at most {_MAX_DIGITS} digits, exponent within "
            f"±{_MAX_EXPONENT})"
        )
    if result.is_zero() and result.is_signed():
        result = result.copy_abs()  # "-0" would otherwise survive onto the wire
    return result


def _decimal_to_wire(value: Decimal) -> str:
    # Positional notation ("0.00000010", not "1.0E-7"): unambiguous for any JSON consumer,
    # and bounded in length by the range check above.
    return format(value, "f")


def _decimal_type(
    name: str,
    summary: str,
    label: str,
    *,
    gt: int | None = None,
    ge: int | None = None,
    le: int | None = None,
) -> Any:
    """Build an Annotated Decimal type with its own refusal messages and wire format."""

    def validate(value: Any) -> Decimal:
        number = _to_finite_decimal(value, label)
        if gt is not None and not number > gt:
            raise ValueError(f"{label} must be > {gt}")
        if ge is not None and le is not None and not ge <= number <= le:
            raise ValueError(f"{label} must be between {ge} and {le}")
        if ge is not None and not number >= ge:
            raise ValueError(f"{label} must be >= {ge}")
        return number

    # Our validator runs first, so the annotated_types bounds never fire; they are there
    # so the generated validation-mode JSON schema states the range.
    bounds: list[Any] = []
    if gt is not None:
        bounds.append(annotated_types.Gt(gt))
    if ge is not None:
        bounds.append(annotated_types.Ge(ge))
    if le is not None:
        bounds.append(annotated_types.Le(le))
    wire_schema = {
        "type": "string",
        "pattern": _DECIMAL_WIRE_PATTERN,
        "description": f"Decimal as a string: {summary}",
    }
    return Annotated[  # type: ignore[valid-type]
        (
            Decimal,
            *bounds,
            BeforeValidator(validate),
            PlainSerializer(_decimal_to_wire, return_type=str, when_used="json"),
            WithJsonSchema(wire_schema, mode="serialization"),
            TypeLabel(name, summary),
        )
    ]


FiniteDecimal = _decimal_type("FiniteDecimal", "any finite decimal", "value")
Price = _decimal_type("Price", "finite decimal > 0", "price", gt=0)
Quantity = _decimal_type("Quantity", "finite decimal > 0", "quantity", gt=0)
NonNegativeDecimal = _decimal_type("NonNegativeDecimal", "finite decimal >= 0", "value", ge=0)
Money = _decimal_type("Money", "finite decimal, any sign", "amount")
Ratio = _decimal_type("Ratio", "finite decimal in [0, 1]", "ratio", ge=0, le=1)
RiskScore = _decimal_type("RiskScore", "finite decimal in [0, 100]", "risk score", ge=0, le=100)


# --------------------------------------------------------------------------- confidence


def _to_confidence(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("confidence must be a number, not a boolean")
    if isinstance(value, Decimal | int | float | str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"confidence must be a number, got {value!r}") from None
    else:
        raise ValueError(f"confidence must be a number, got {type(value).__name__}")
    if not 0.0 <= number <= 1.0:  # also false for NaN
        raise ValueError(f"confidence must be between 0 and 1, got {value!r}")
    return number


Confidence = Annotated[
    float,
    annotated_types.Ge(0),
    annotated_types.Le(1),
    BeforeValidator(_to_confidence),
    TypeLabel("Confidence", "number in [0, 1]"),
]


# --------------------------------------------------------------------------- datetimes


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_require_utc),
    TypeLabel("UtcDatetime", "ISO-8601 timestamp with timezone, normalised to UTC"),
]


# --------------------------------------------------------------------------- identifiers

# Base and quote are plain codes so that symbol_token() stays reversible: "-" only ever
# separates base from quote and "_" only precedes the settle part.
_SYMBOL = re.compile(r"[A-Z0-9]+/[A-Z0-9]+(?::[A-Z0-9]+(?:-[A-Z0-9]+)*)?")
_ASSET = re.compile(r"[A-Z0-9]{1,32}")
_LOWER_TOKEN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")


def _text(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {type(value).__name__}")
    return value


def _validate_symbol(value: Any) -> str:
    text = _text(value, "symbol").upper()
    if not _SYMBOL.fullmatch(text):
        raise ValueError(
            f"symbol must look like BASE/QUOTE or BASE/QUOTE:SETTLE "
            f"(letters and digits only), got {value!r}"
        )
    return text


def split_symbol(symbol: str) -> tuple[str, str, str | None]:
    """Split a validated symbol into (base, quote, settle); settle is None for spot."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    # Contracts carry an expiry after the settle code ("USDT-240329"); the asset is "USDT".
    return base, quote, settle.split("-")[0] or None


def _validate_asset(value: Any) -> str:
    text = _text(value, "asset code").upper()
    if not _ASSET.fullmatch(text):
        raise ValueError(f"asset code must be 1-32 letters or digits, got {value!r}")
    return text


def _validate_exchange(value: Any) -> str:
    text = _text(value, "exchange").lower()
    if not _LOWER_TOKEN.fullmatch(text):
        raise ValueError(f"exchange must match [a-z0-9][a-z0-9_-]*, got {value!r}")
    return text


def _lower_token_validator(label: str) -> Any:
    # No case folding: ids come from configuration, and a strategy must recognise its own
    # id in the messages that come back to it.
    def validate(value: Any) -> str:
        text = _text(value, label)
        if not _LOWER_TOKEN.fullmatch(text):
            raise ValueError(f"{label} must match [a-z0-9][a-z0-9_-]* (max 64), got {value!r}")
        return text

    return BeforeValidator(validate)


def _validate_client_order_id(value: Any) -> str:
    text = _text(value, "client_order_id")
    if not _CLIENT_ORDER_ID.fullmatch(text):
        raise ValueError(f"client_order_id must be 1-36 chars of [A-Za-z0-9_-], got {value!r}")
    return text


def _validate_non_empty(value: Any) -> str:
    text = _text(value, "text").strip()
    if not text:
        raise ValueError("must not be empty")
    return text


Symbol = Annotated[
    str,
    annotated_types.MaxLen(64),
    BeforeValidator(_validate_symbol),
    TypeLabel("Symbol", "BASE/QUOTE[:SETTLE], uppercase"),
]
AssetCode = Annotated[
    str,
    BeforeValidator(_validate_asset),
    TypeLabel("AssetCode", "currency code, uppercase, e.g. USDT"),
]
ExchangeId = Annotated[
    str,
    BeforeValidator(_validate_exchange),
    TypeLabel("ExchangeId", "exchange id, lowercase, e.g. binance or paper"),
]
StrategyId = Annotated[
    str,
    _lower_token_validator("strategy_id"),
    TypeLabel("StrategyId", "[a-z0-9][a-z0-9_-]*"),
]
AgentName = Annotated[
    str,
    _lower_token_validator("agent"),
    TypeLabel("AgentName", "[a-z0-9][a-z0-9_-]*"),
]
ClientOrderId = Annotated[
    str,
    BeforeValidator(_validate_client_order_id),
    TypeLabel("ClientOrderId", "1-36 chars of [A-Za-z0-9_-]"),
]
NonEmptyStr = Annotated[
    str,
    annotated_types.MinLen(1),
    annotated_types.MaxLen(2000),
    BeforeValidator(_validate_non_empty),
    TypeLabel("NonEmptyStr", "non-blank text, trimmed"),
]


# --------------------------------------------------------------------------- timeframes

TimeframeLiteral = Literal[
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"
]
TIMEFRAMES: Final[tuple[str, ...]] = get_args(TimeframeLiteral)
Timeframe = Annotated[TimeframeLiteral, TypeLabel("Timeframe", "ccxt timeframe, e.g. 1m, 1h, 1d")]

# Same unit lengths as ccxt (a month counts as 30 days), so durations agree with the exchange.
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000}


def timeframe_seconds(timeframe: str) -> int:
    """Length of one candle of ``timeframe`` in seconds; ValueError for unknown timeframes."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}")
    return int(timeframe[:-1]) * _UNIT_SECONDS[timeframe[-1]]

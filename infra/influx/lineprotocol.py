"""Pure builders for InfluxDB line protocol and InfluxQL quoting (no I/O).

Everything here is shared by InfluxDB 1.x, 2.x (v1-compatible API) and 3 Core, so the rules are
the intersection of what those versions parse identically:

* measurement names escape commas and spaces; tag keys, tag values and field keys escape commas,
  equals signs and spaces; string field values escape double quotes and backslashes.
* A backslash in a measurement, tag key, tag value or field key is refused rather than escaped.
  InfluxDB 1.x keeps ``\\\\`` in a tag as two backslashes (verified on 1.6.7) and cannot store a
  tag that ends in a backslash at all, so no escaping reads back the same on every version.
  Exchange ids, symbols and timeframes never contain one (their validators forbid it).
* Newlines end a point, so they are refused everywhere except in InfluxQL literals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from protocol import Candle, IndicatorSnapshot

__all__ = [
    "CANDLE_FIELDS",
    "CANDLE_MEASUREMENT",
    "INDICATOR_MEASUREMENT",
    "SERIES_TAGS",
    "FieldValue",
    "candle_line",
    "escape_field_key",
    "escape_measurement",
    "escape_string_field",
    "escape_tag",
    "format_float",
    "from_epoch_ms",
    "indicator_line",
    "line",
    "quote_identifier",
    "quote_literal",
    "read_decimal",
    "rfc3339_ms",
    "to_epoch_ms",
]

CANDLE_MEASUREMENT: Final = "candle"
INDICATOR_MEASUREMENT: Final = "indicators"
SERIES_TAGS: Final = ("exchange", "symbol", "timeframe")
CANDLE_FIELDS: Final = ("open", "high", "low", "close", "volume")

FieldValue = Decimal | float | int | bool | str

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _refuse_unportable(text: str, what: str) -> None:
    if not text:
        raise ValueError(f"{what} must not be empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must not contain a newline: {text!r}")
    if "\\" in text:
        raise ValueError(f"{what} must not contain a backslash (not portable across InfluxDB versions): {text!r}")


def escape_measurement(name: str) -> str:
    """A measurement name for line protocol: commas and spaces backslash-escaped."""
    _refuse_unportable(name, "measurement")
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_tag(text: str) -> str:
    """A tag key or tag value for line protocol: commas, equals signs and spaces escaped.

    Empty values are refused: Influx drops an empty tag, which would silently merge series.
    """
    _refuse_unportable(text, "tag key/value")
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_field_key(key: str) -> str:
    """A field key for line protocol (same rules as tag keys)."""
    _refuse_unportable(key, "field key")
    return key.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string_field(value: str) -> str:
    """A string field value, double-quoted, with backslashes and double quotes escaped."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"string field must not contain a newline: {value!r}")
    # Backslashes first, or the backslash added before a quote would be doubled again.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: Decimal | float | int) -> str:
    """A float field value: the shortest text that round-trips the nearest double.

    Decimals become floats so InfluxQL can aggregate them; see ``read_decimal`` for the way back.
    """
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"float field must be finite, got {value!r}")
    return repr(number)


def _format_field(value: FieldValue) -> str:
    # bool before int: bool is an int subclass and must not become "1i".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, str):
        return escape_string_field(value)
    return format_float(value)


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; refuses naive datetimes and sub-millisecond precision,
    because the store writes with precision=ms and a truncated time would not read back equal."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    delta = moment - _EPOCH
    if delta % _ONE_MS:
        raise ValueError(f"timestamp {moment.isoformat()} has sub-millisecond precision")
    return delta // _ONE_MS


def from_epoch_ms(ms: int) -> datetime:
    """The UTC datetime of an epoch-milliseconds timestamp (exact integer arithmetic)."""
    return _EPOCH + timedelta(milliseconds=ms)


def rfc3339_ms(moment: datetime) -> str:
    """An InfluxQL time literal ('2024-01-01T00:00:00.000Z'); every InfluxQL version parses it."""
    ms = to_epoch_ms(moment)
    return from_epoch_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def read_decimal(value: float | int) -> Decimal:
    """A Decimal from a float read back from Influx.

    ``repr`` yields the shortest string that maps to the same double, and a decimal of at most
    15 significant digits is that shortest string, so the original value comes back exactly.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number from InfluxDB, got {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(value))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], timestamp_ms: int) -> str:
    """One point in line protocol with a millisecond timestamp; tags sorted by key (as Influx
    recommends, so the server does not have to sort them), fields in the given order."""
    if not fields:
        raise ValueError("a point needs at least one field")
    head = escape_measurement(measurement)
    for key in sorted(tags):
        head += f",{escape_tag(key)}={escape_tag(tags[key])}"
    body = ",".join(f"{escape_field_key(key)}={_format_field(value)}" for key, value in fields.items())
    return f"{head} {body} {timestamp_ms}"


def _series_tags(exchange: str, symbol: str, timeframe: str) -> dict[str, str]:
    return dict(zip(SERIES_TAGS, (exchange, symbol, timeframe), strict=True))


def candle_line(candle: Candle) -> str:
    """The point of one candle: tags exchange/symbol/timeframe, OHLCV floats, time = open_time."""
    fields: dict[str, FieldValue] = {name: getattr(candle, name) for name in CANDLE_FIELDS}
    tags = _series_tags(candle.exchange, candle.symbol, candle.timeframe)
    return line(CANDLE_MEASUREMENT, tags, fields, to_epoch_ms(candle.open_time))


def indicator_line(snapshot: IndicatorSnapshot) -> str:
    """The point of one snapshot: every non-null indicator plus ``close``; the declared
    parametrised ones (``extra``: ``rsi_7``, ``ema_50``) are fields under their own names.

    ``close`` is always written, so a snapshot still warming up (all indicators null) exists
    as a point and a reader can tell "computed, nothing yet" from "never computed".
    """
    fields: dict[str, FieldValue] = {"close": snapshot.close}
    for name, value in snapshot.indicators:
        if value is not None:
            fields[name] = value
    fields.update(snapshot.extra)
    tags = _series_tags(snapshot.exchange, snapshot.symbol, snapshot.timeframe)
    return line(INDICATOR_MEASUREMENT, tags, fields, to_epoch_ms(snapshot.candle_time))


def quote_literal(text: str) -> str:
    """An InfluxQL string literal: single quotes, with backslashes, quotes and newlines escaped."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes, with backslashes and double quotes escaped."""
    if "\n" in name:
        raise ValueError(f"identifier must not contain a newline: {name!r}")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

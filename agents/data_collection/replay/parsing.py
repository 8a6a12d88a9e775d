"""Cell-level parsing: one price or one timestamp, from CSV text or a Parquet value.

Nothing here raises on bad data: a cell that cannot be read comes back as its raw text, so
the cleaner can refuse that one row with a reason instead of the whole file failing.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "epoch_unit",
    "is_number_text",
    "parse_decimal",
    "parse_decimal_text",
    "parse_time",
    "parse_time_text",
    "raw_text",
]

# Plain ASCII notation only. Decimal() alone would also take "1_000", " NaN" or non-ASCII
# digits; those stay raw text so the Candle model refuses them in its own words.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Magnitude thresholds for epoch timestamps. Seconds stay below 1e11 until the year 5138, and
# milliseconds (µs, ns) are at least 1e11 (1e14, 1e17) from 1973 on, so for any plausible
# market data the magnitude alone tells the unit. Binance switched its 2025+ kline exports
# from milliseconds to microseconds; this is how both are read without being told.
_UNITS: tuple[tuple[int, str, Decimal], ...] = (
    (10**17, "ns", Decimal("0.001")),
    (10**14, "us", Decimal(1)),
    (10**11, "ms", Decimal(1_000)),
    (0, "s", Decimal(1_000_000)),
)


def raw_text(value: Any) -> str:
    """The cell as text, for error messages and refusals (an empty or null cell is "")."""
    return "" if value is None else str(value).strip()


def _plain_digits(text: str) -> bool:
    """ASCII digits with at most one point, e.g. "43443.0625": what nearly every price cell
    is. Such text always matches ``_NUMBER``; this test takes about a quarter of the
    pattern's time, which is more than ``Decimal`` itself takes."""
    return text.isascii() and text.replace(".", "", 1).isdecimal()


def is_number_text(text: str) -> bool:
    """True for plain decimal notation, e.g. "43443.0625", "-1", "1e5"."""
    return _NUMBER.fullmatch(text.strip()) is not None


def parse_decimal(value: Any) -> Decimal | str:
    """A price or volume cell as an exact Decimal, or its raw text when it is not a number.

    Text is converted as written ("43443.0625" stays exactly that). A float (a Parquet
    double) has no text; its shortest round-trip repr is used, the same rule the protocol
    applies, never ``Decimal(float)`` with its binary expansion digits. NaN and infinities
    stay text, for the Candle model to refuse.
    """
    if type(value) is str:  # a CSV cell, by far the most common: straight to the text rule
        return parse_decimal_text(value)
    if isinstance(value, bool):
        return raw_text(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else raw_text(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else raw_text(value)
    return parse_decimal_text(raw_text(value))


def parse_decimal_text(text: str) -> Decimal | str:
    """``parse_decimal`` of a text cell (a CSV cell): the Decimal it writes, or the stripped
    text when it is not plain decimal notation. The per-row path of CSV loading."""
    text = text.strip()
    if not _plain_digits(text) and _NUMBER.fullmatch(text) is None:
        return text
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        return text


def epoch_unit(number: Decimal | int) -> str:
    """Unit of an epoch timestamp judged by its magnitude: "s", "ms", "us" or "ns"."""
    return next(name for threshold, name, _ in _UNITS if abs(number) >= threshold)


def _from_epoch(number: Decimal) -> datetime | None:
    """An epoch timestamp in s, ms, µs or ns (told apart by magnitude), or None."""
    factor = next(factor for threshold, _, factor in _UNITS if abs(number) >= threshold)
    try:
        micros = number * factor
        if micros != micros.to_integral_value():
            return None  # finer than a microsecond: not representable, not a candle boundary
        return _EPOCH + timedelta(microseconds=int(micros))
    except (ArithmeticError, ValueError):  # decimal overflow, or beyond datetime's range
        return None


def _aware(moment: datetime) -> tuple[datetime, timedelta | None]:
    """UTC datetime plus the offset it was written with (None for naive, read as UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC), None
    return moment.astimezone(UTC), moment.utcoffset()


def parse_time(value: Any) -> tuple[datetime, timedelta | None] | str:
    """A timestamp cell as (aware UTC datetime, original UTC offset), or its raw text.

    Accepted: ISO-8601 text with or without an offset (``2021-09-27 14:45:00+01:00``,
    ``...T...Z``, a bare date); epoch numbers in seconds, milliseconds, microseconds or
    nanoseconds; Parquet timestamps and dates. A timestamp WITHOUT an offset (naive text or a
    Parquet timestamp without a time zone) is taken to be UTC, which is how exchanges and
    Binance exports write them; its offset is reported as None, not as a normalisation.
    """
    if type(value) is str:  # a CSV cell, by far the most common: straight to the text rule
        return parse_time_text(value)
    if isinstance(value, bool):
        return raw_text(value)
    if isinstance(value, datetime):
        if getattr(value, "nanosecond", 0):  # pandas.Timestamp finer than datetime holds
            return raw_text(value)
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        return _aware(value)
    if isinstance(value, date):
        return _aware(datetime(value.year, value.month, value.day))
    if isinstance(value, int):
        moment = _from_epoch(Decimal(value))
        return (moment, None) if moment is not None else raw_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return raw_text(value)
        moment = _from_epoch(Decimal(repr(value)))
        return (moment, None) if moment is not None else raw_text(value)
    return parse_time_text(raw_text(value))


def parse_time_text(text: str) -> tuple[datetime, timedelta | None] | str:
    """``parse_time`` of a text cell (a CSV cell): epoch numbers or ISO-8601, else the
    stripped text. The per-row path of CSV loading."""
    text = text.strip()
    # A ":" (any ISO time of day) rules a number out without running the pattern.
    if ":" not in text and (_plain_digits(text) or _NUMBER.fullmatch(text) is not None):
        moment = _from_epoch(Decimal(text))
        return (moment, None) if moment is not None else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    offset = moment.utcoffset()
    if offset is None:  # naive (or a tzinfo that declines to say): read as UTC
        return moment.replace(tzinfo=UTC), None
    return moment.astimezone(UTC), offset

"""Turn raw rows into a replayable candle series, repairing what is safe and refusing the rest.

Every decision is counted in the ``CleaningReport``; nothing is dropped silently and nothing
is invented (gaps are reported, never filled: a replay must only show candles that existed).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import TypeAdapter, ValidationError

from agents.data_collection.replay.grid import is_aligned, next_slot, slots_between
from agents.data_collection.replay.loading import RawBar
from agents.data_collection.replay.report import CleaningReport, CleanResult, Gap, Refusal
from protocol import Candle, ExchangeId, NonEmptyStr, Symbol, timeframe_seconds

__all__ = ["clean", "validation_reason"]

_PARTIAL = "not aligned to the {timeframe} grid (partial bar)"
_Values = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


def validation_reason(error: ValidationError) -> str:
    """The Candle model's complaint in the bus codec's words: "field: what is wrong; ..."."""
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(step) for step in detail["loc"])
        # Our validators' own words, without pydantic's "Value error, " prefix (as the codec).
        what = str(detail.get("ctx", {}).get("error", detail["msg"]))
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts)


def _check_series(
    exchange: str, symbol: str, timeframe: str, source: str, now: datetime | None
) -> None:
    """Refuse a bad series identity up front, instead of refusing every row for it."""
    timeframe_seconds(timeframe)
    TypeAdapter(ExchangeId).validate_python(exchange)
    TypeAdapter(Symbol).validate_python(symbol)
    TypeAdapter(NonEmptyStr).validate_python(source)
    if now is not None and now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _values(candle: Candle) -> _Values:
    return candle.open, candle.high, candle.low, candle.close, candle.volume


def _judge(
    bar: RawBar,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str,
    now: datetime | None,
    report: CleaningReport,
) -> Candle | None:
    """The candle this row stands for, or None after recording its refusal."""

    def refuse(counter: str, reason: str) -> None:
        setattr(report, counter, getattr(report, counter) + 1)
        report.refusals.append(Refusal(bar.row, bar.open_time, reason))

    if isinstance(bar.open_time, str):
        shown = repr(bar.open_time) if bar.open_time else "empty"
        refuse("invalid_refused", f"open_time: not a readable timestamp ({shown})")
        return None
    if bar.utc_offset:
        report.timezone_normalised += 1
    # A time off the grid is what a data vendor writes for a bar still forming when the
    # file was cut (13:50:02 in a 15m series); its prices cover part of an interval only.
    # The last-bar case "flat prices, volume 0" needs no rule of its own: it is off-grid too.
    if not is_aligned(bar.open_time, timeframe):
        refuse("partial_bars_refused", _PARTIAL.format(timeframe=timeframe))
        return None
    try:
        candle = Candle.closed(
            source=source,
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            open_time=bar.open_time,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            # The moment the candle became final, not the wall clock: replaying the same
            # file must give the same messages, byte for byte.
            produced_at=bar.open_time + timedelta(seconds=timeframe_seconds(timeframe)),
        )
    except ValidationError as exc:
        refuse("invalid_refused", validation_reason(exc))
        return None
    if now is not None and candle.close_time > now:
        refuse(
            "not_closed_refused",
            f"not closed yet (closes {candle.close_time.isoformat()}, now {now.isoformat()})",
        )
        return None
    return candle


def _out_of_order(times: Sequence[datetime]) -> int:
    """Fewest rows that must move to put ``times`` (distinct) in order: n - longest increasing
    subsequence. Unlike "rows behind the running maximum", one early row from the future
    counts as one misplaced row, not as every row after it."""
    tails: list[datetime] = []
    for moment in times:
        index = bisect_left(tails, moment)
        if index == len(tails):
            tails.append(moment)
        else:
            tails[index] = moment
    return len(times) - len(tails)


def _gaps(candles: Sequence[Candle], timeframe: str) -> list[Gap]:
    gaps = []
    for before, after in zip(candles, candles[1:], strict=False):
        missing = slots_between(before.open_time, after.open_time, timeframe)
        if missing > 0:
            gaps.append(Gap(next_slot(before.open_time, timeframe), after.open_time, missing))
    return gaps


def clean(
    bars: Iterable[RawBar],
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str = "data_collection",
    now: datetime | None = None,
) -> CleanResult:
    """Validate, de-duplicate and order raw rows into closed candles on the timeframe grid.

    Repaired (and counted): offsets converted to UTC, duplicates dropped, rows sorted.
    Refused (each with a reason): unreadable or invalid rows (the Candle model's own
    validation, so the reasons are the bus's), bars off the grid (partial), and with
    ``now`` given, bars that close after ``now``. Zero-volume bars are kept: a quiet
    interval is real. Gaps are listed, not filled. ``ValueError`` for a bad exchange,
    symbol, timeframe, source or a naive ``now``.
    """
    _check_series(exchange, symbol, timeframe, source, now)
    rows = list(bars)
    report = CleaningReport(exchange, symbol, timeframe, rows_read=len(rows))
    # open_time -> (position of the surviving row in file order, its candle)
    kept: dict[datetime, tuple[int, Candle]] = {}
    for position, bar in enumerate(rows):
        candle = _judge(
            bar,
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            source=source,
            now=now,
            report=report,
        )
        if candle is None:
            continue
        earlier = kept.get(candle.open_time)
        if earlier is not None:
            # Keep the LAST row. Files like this are concatenated downloads; the later part
            # was fetched later, after the vendor finalised bars that were still forming or
            # being revised (in the package data the earlier copy of 13:45 on 2021-10-27 is a
            # flat bar of one price, the later one the full bar). Same rule for identical
            # rows, so the survivor's position never depends on whether values matched.
            if _values(earlier[1]) == _values(candle):
                report.duplicates_dropped += 1
            else:
                report.conflicting_duplicates += 1
        kept[candle.open_time] = (position, candle)

    survivors = sorted(kept.values(), key=lambda item: item[0])
    report.reordered = _out_of_order([candle.open_time for _, candle in survivors])
    candles = sorted((candle for _, candle in survivors), key=lambda candle: candle.open_time)
    report.candles = len(candles)
    report.zero_volume = sum(1 for candle in candles if candle.volume == 0)
    report.gaps = _gaps(candles, timeframe)
    if candles:
        report.first_open_time, report.last_open_time = candles[0].open_time, candles[-1].open_time
    return CleanResult(candles=candles, report=report)

"""The optimised replay loader gives exactly what the straightforward one it replaced gave.

``Reference`` below is that earlier implementation, kept as the specification: every CSV
row parsed through the generic cell parsers' text rules (the number pattern, then Decimal;
epoch numbers, then ISO-8601), every row judged through ``is_aligned`` and
``Candle.closed``, survivors ordered by sorting. ``load_and_clean`` and ``clean`` must
produce the same candles (by value, ids and fields set, and byte for byte on the wire) and
the same report (every count, refusal reason and gap) on the package data, on crafted
rows with every defect, and on generated files mixing valid and broken cells.
"""

from __future__ import annotations

import re
import tempfile
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.data_collection.replay import (
    PACKAGE_DATASET,
    CleaningReport,
    CleanResult,
    Gap,
    RawBar,
    Refusal,
    clean,
    load_and_clean,
    load_file,
    validation_reason,
)
from agents.data_collection.replay.grid import is_aligned, next_slot, slots_between
from agents.data_collection.replay.loading import TIME_COLUMNS, VALUE_COLUMNS
from agents.data_collection.replay.parsing import _from_epoch
from protocol import Candle, timeframe_seconds

# --------------------------------------------------------------------------- the reference

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def ref_decimal(cell: str) -> Decimal | str:
    text = cell.strip()
    if not _NUMBER.fullmatch(text):
        return text
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def ref_time(cell: str) -> tuple[datetime, timedelta | None] | str:
    text = cell.strip()
    if _NUMBER.fullmatch(text):
        moment = _from_epoch(Decimal(text))
        return (moment, None) if moment is not None else text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC), None
    return parsed.astimezone(UTC), parsed.utcoffset()


def ref_bar(row: int, time_cell: str, values: Sequence[str]) -> RawBar:
    parsed = ref_time(time_cell)
    open_time, offset = (parsed, None) if isinstance(parsed, str) else parsed
    o, h, low, c, v = (ref_decimal(value) for value in values)
    return RawBar(row, open_time, o, h, low, c, v, offset)


def ref_load_csv(path: Path) -> list[RawBar]:
    frame = pd.read_csv(path, header=None, dtype=str, na_filter=False, encoding="utf-8-sig")
    cells: list[list[str]] = frame.to_numpy().tolist()
    first = cells[0]
    if all(_NUMBER.fullmatch(cell.strip()) for cell in first if cell != "") and any(first):
        return [ref_bar(n, row[0], row[1:6]) for n, row in enumerate(cells, start=1)]
    folded = [name.strip().lower() for name in first]
    [time_index] = [i for i, name in enumerate(folded) if name in TIME_COLUMNS]
    value_indices = [folded.index(name) for name in VALUE_COLUMNS]
    return [
        ref_bar(n, row[time_index], [row[i] for i in value_indices])
        for n, row in enumerate(cells[1:], start=1)
    ]


def ref_judge(
    bar: RawBar,
    *,
    series: dict[str, str],
    source: str,
    now: datetime | None,
    report: CleaningReport,
) -> Candle | None:
    timeframe = series["timeframe"]

    def refuse(counter: str, reason: str) -> None:
        setattr(report, counter, getattr(report, counter) + 1)
        report.refusals.append(Refusal(bar.row, bar.open_time, reason))

    if isinstance(bar.open_time, str):
        shown = repr(bar.open_time) if bar.open_time else "empty"
        refuse("invalid_refused", f"open_time: not a readable timestamp ({shown})")
        return None
    if bar.utc_offset:
        report.timezone_normalised += 1
    if not is_aligned(bar.open_time, timeframe):
        refuse("partial_bars_refused", f"not aligned to the {timeframe} grid (partial bar)")
        return None
    try:
        candle = Candle.closed(
            source=source,
            **series,
            open_time=bar.open_time,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
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


def ref_clean(
    rows: list[RawBar],
    series: dict[str, str],
    source: str = "data_collection",
    now: datetime | None = None,
) -> CleanResult:
    report = CleaningReport(**series, rows_read=len(rows))
    kept: dict[datetime, tuple[int, Candle]] = {}
    for position, bar in enumerate(rows):
        candle = ref_judge(bar, series=series, source=source, now=now, report=report)
        if candle is None:
            continue
        earlier = kept.get(candle.open_time)
        if earlier is not None:
            old, new = earlier[1], candle
            same = (old.open, old.high, old.low, old.close, old.volume) == (
                new.open,
                new.high,
                new.low,
                new.close,
                new.volume,
            )
            if same:
                report.duplicates_dropped += 1
            else:
                report.conflicting_duplicates += 1
        kept[candle.open_time] = (position, candle)
    survivors = sorted(kept.values(), key=lambda item: item[0])
    tails: list[datetime] = []
    for _, candle in survivors:
        index = bisect_left(tails, candle.open_time)
        tails[index : index + 1] = [candle.open_time]
    report.reordered = len(survivors) - len(tails)
    candles = sorted((candle for _, candle in survivors), key=lambda candle: candle.open_time)
    report.candles = len(candles)
    report.zero_volume = sum(1 for candle in candles if candle.volume == 0)
    timeframe = series["timeframe"]
    for before, after in zip(candles, candles[1:], strict=False):
        missing = slots_between(before.open_time, after.open_time, timeframe)
        if missing > 0:
            report.gaps.append(
                Gap(next_slot(before.open_time, timeframe), after.open_time, missing)
            )
    if candles:
        report.first_open_time, report.last_open_time = candles[0].open_time, candles[-1].open_time
    return CleanResult(candles=candles, report=report)


# --------------------------------------------------------------------------- comparison


def assert_same(result: CleanResult, reference: CleanResult) -> None:
    assert len(result.candles) == len(reference.candles)
    for ours, theirs in zip(result.candles, reference.candles, strict=True):
        assert ours == theirs
        assert ours.message_id == theirs.message_id == ours.correlation_id
        assert ours.model_fields_set == theirs.model_fields_set
        assert ours.model_dump_json() == theirs.model_dump_json()
    assert result.report == reference.report
    assert result.report.summary() == reference.report.summary()


SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "15m"}
HEADER = "time,open,high,low,close,volume"
OK = "100,110,90,105,5"


def package_csv() -> Path:
    import importlib.resources

    package, _, resource = PACKAGE_DATASET.partition("/")
    return Path(str(importlib.resources.files(package).joinpath(resource)))


def write(directory: Path, lines: list[str]) -> Path:
    path = directory / "bars.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def package_rows() -> list[RawBar]:
    return ref_load_csv(package_csv())


def test_package_data_same_as_reference(package_rows: list[RawBar]) -> None:
    series = {"exchange": "binance", "symbol": "BTC/USD", "timeframe": "15m"}
    result = load_and_clean(None, **series)
    reference = ref_clean(package_rows, series)
    assert len(reference.candles) == 8686  # the reference is the real thing, not empty
    assert_same(result, reference)


def test_package_data_with_now_source_and_casing_same_as_reference(
    package_rows: list[RawBar],
) -> None:
    now = datetime(2021, 12, 1, 3, 7, tzinfo=timezone(timedelta(hours=2)))
    series = {"exchange": "Binance", "symbol": "btc/usd", "timeframe": "15m"}  # normalised
    result = clean(load_file(package_csv()), **series, source=" replay ", now=now)
    reference = ref_clean(package_rows, series, source=" replay ", now=now)
    assert reference.report.not_closed_refused > 2000
    assert_same(result, reference)


CRAFTED = [
    f"2024-01-01T00:00:00Z,{OK}",
    f"2024-01-01 01:15:00+01:00,{OK}",  # 00:15Z, offset normalised
    f"2024-01-01T00:15:00Z,{OK}",  # exact duplicate of the row above
    "2024-01-01T00:30:00Z,100,110,90,105,6",
    "2024-01-01T00:30:00Z,100,110,90,105,7",  # conflicting duplicate
    f"2024-01-01T00:20:02Z,{OK}",  # partial bar
    f"2024-01-01T02:00:00Z,{OK}",  # gap before
    f"2024-01-01T01:00:00Z,{OK}",  # out of order
    f"2024-01-01T00:45:00,{OK}",  # naive: UTC
    f"1704070800,{OK}",  # epoch seconds: 01:00Z again (duplicate)
    f"1704072600000,{OK}",  # epoch ms: 01:30Z
    f"1704073500000000,{OK}",  # epoch us: 01:45Z
    f"1704075300000000000,{OK}",  # epoch ns: 02:15Z
    f"1704077100.5,{OK}",  # half a second past a slot: partial
    f"1704077100.0000001,{OK}",  # finer than a microsecond: unreadable
    f"20240101,{OK}",  # a number: epoch seconds in 1970, partial
    f"2024-01-01,{OK}",  # a bare date: midnight, duplicate
    f"2024-01-01T03,{OK}",  # hour only
    f"  2024-01-01T03:15:00Z  ,{OK}",  # padded
    f"yesterday,{OK}",
    f",{OK}",
    f"2024-13-01T00:00:00Z,{OK}",
    f"99999999999999999999999999999,{OK}",  # beyond datetime: unreadable
    "2024-01-01T03:30:00Z,abc,110,90,105,5",
    "2024-01-01T03:45:00Z,100,110,90,105,1_0",
    "2024-01-01T04:00:00Z,NaN,110,90,105,5",
    "2024-01-01T04:15:00Z,100,110,90,105,inf",
    "2024-01-01T04:30:00Z,0,110,90,105,5",
    "2024-01-01T04:45:00Z,100,110,-90,105,5",
    "2024-01-01T05:00:00Z,100,80,90,85,5",
    "2024-01-01T05:15:00Z,120,110,90,105,5",
    "2024-01-01T05:30:00Z,85,110,90,105,5",
    "2024-01-01T05:45:00Z,100,110,90,88,5",
    "2024-01-01T06:00:00Z,100,110,90,105,-1",
    "2024-01-01T06:15:00Z,100,110,90,105,",
    "2024-01-01T06:30:00Z,100,110,90,105,-0",  # -0 volume becomes 0
    "2024-01-01T06:45:00Z, 100 ,+110,9E1,105.,.5",
    "2024-01-01T07:00:00Z,1e2,1.1E+2,90.000,105,0.00000001",
    f"2024-01-01T07:15:00Z,{'0' * 150}100,110,90,105,5",  # long text, 3 digits
    f"2024-01-01T07:30:00Z,{'1' * 61},{'1' * 62},90,105,5",  # too many digits
    "2024-01-01T07:45:00Z,100,110,90,105,1e61",  # exponent out of range
    "2024-01-01T08:00:00Z,100,110,90,105,1e-61",
    "2024-01-01T08:15:00Z,١٠٠,110,90,105,5",  # Arabic-Indic digits
    "2024-01-01T08:30:00Z,100,110,90,105,５",  # full-width digit
    "2024-01-01T08:45:00Z,100,110,90,105,1e999999999999999999999",
    "2024-01-01T09:00:00Z,100,100,100,100,0",  # flat and quiet: kept
    "2024-01-01T09:15:00+05:45,100,110,90,105,5",  # 03:30Z
    "2024-01-01T09:15:00.000001Z,100,110,90,105,5",  # a microsecond off the grid
    "9999-12-31T23:15:00Z,100,110,90,105,5",
]


@pytest.mark.parametrize("now", [None, datetime(2024, 1, 1, 3, tzinfo=UTC)], ids=["all", "now"])
def test_crafted_rows_same_as_reference(tmp_path: Path, now: datetime | None) -> None:
    path = write(tmp_path, [HEADER, *CRAFTED])
    result = clean(load_file(path), **SERIES, now=now)
    reference = ref_clean(ref_load_csv(path), SERIES, now=now)
    report = reference.report
    # Every kind of decision is exercised, so agreeing means something.
    assert report.invalid_refused >= 20 and report.partial_bars_refused >= 4
    assert report.duplicates_dropped >= 2 and report.conflicting_duplicates >= 1
    assert report.reordered >= 1 and report.gaps and report.timezone_normalised >= 2
    assert_same(result, reference)
    if now is None:
        assert_same(load_and_clean(path, **SERIES), reference)


def test_binance_layout_same_as_reference(tmp_path: Path) -> None:
    lines = []
    for index, cells in enumerate(
        [OK, "100,110,90,105,x", "100,110,90,105,0", OK, "1,2,3,4,5", " 7 ,8,6,7,1e1"]
    ):
        start = 1704067200000 + index * 60_000 + (2_000 if index == 3 else 0)
        lines.append(f"{start},{cells},{start + 59_999},0,1,0,0,0")
    lines.append(lines[0])  # duplicate
    path = write(tmp_path, lines)
    series = {**SERIES, "timeframe": "1m"}
    reference = ref_clean(ref_load_csv(path), series)
    assert reference.report.invalid_refused == 2 and reference.report.partial_bars_refused == 1
    assert_same(load_and_clean(path, **series), reference)


@pytest.mark.parametrize(
    ("timeframe", "times"),
    [
        ("1M", ["2024-01-01", "2024-02-01T00:00:00Z", "2024-02-15", "2024-05-01", "2023-12-01"]),
        ("1w", ["2024-01-01", "2024-01-08", "2024-01-04", "2024-01-29", "2024-01-22"]),
        ("1h", ["2024-01-01T00:00Z", "2024-01-01T05:00Z", "2024-01-01T01:30Z"]),
        ("3d", ["1970-01-01", "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-09"]),
    ],
)
def test_other_timeframes_same_as_reference(
    tmp_path: Path, timeframe: str, times: list[str]
) -> None:
    path = write(tmp_path, [HEADER, *(f"{moment},{OK}" for moment in times)])
    series = {**SERIES, "timeframe": timeframe}
    reference = ref_clean(ref_load_csv(path), series)
    assert_same(load_and_clean(path, **series), reference)


def test_raw_bars_of_any_kind_same_as_reference() -> None:
    """``clean`` takes RawBars from any caller: other zones, naive times, Timestamps."""
    d = Decimal
    hour = timedelta(hours=1)
    plus_one = timezone(hour)
    rows = [
        RawBar(1, datetime(2024, 1, 1, 1, 0, tzinfo=plus_one), d(100), d(110), d(90), d(105), d(5)),
        RawBar(2, datetime(2024, 1, 1, 0, 15), d(100), d(110), d(90), d(105), d(5)),  # naive
        RawBar(3, pd.Timestamp("2024-01-01T00:30:00Z"), d(100), d(110), d(90), d(105), d(5)),
        RawBar(4, datetime(2024, 1, 1, 0, 45, tzinfo=UTC), "1", d(110), d(90), d(105), d(5)),
        RawBar(5, datetime(2024, 1, 1, 1, 0, tzinfo=UTC), d("-0"), d(1), d(1), d(1), d("-0")),
        RawBar(6, datetime(2024, 1, 1, 1, 15, tzinfo=UTC), 100, 110.5, d(90), d(105), 5),
        RawBar(7, datetime(2024, 1, 1, 1, 30, tzinfo=UTC), d(100), d(110), d(90), d(105), True),
        RawBar(8, "", d(100), d(110), d(90), d(105), d(5)),
        RawBar(9, datetime(2024, 1, 1, 1, 46, tzinfo=plus_one), d(1), d(1), d(1), d(1), d(0), hour),
    ]
    reference = ref_clean(rows, SERIES)
    assert reference.candles and reference.report.refusals
    assert_same(clean(rows, **SERIES), reference)


# Cells chosen to hit every branch: valid, borderline and broken numbers and times.
TIME_CELLS = st.sampled_from(
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:15:00+00:00",
        "2024-01-01 01:30:00+01:00",
        "2024-01-01T00:45:00",
        "2024-01-01T00:50:02Z",
        "2024-02-01",
        "2024-01-01T01",
        "1704067200",
        "1704068100000",
        "1704069000000000",
        "1704069900000000000",
        "1704067200.5",
        "1.7040672e9",
        "-900",
        "20240101",
        " 2024-01-01T00:15:00Z ",
        "",
        "nan",
        "yesterday",
        "2024-01-01T00:00:00ZZ",
    ]
)
VALUE_CELLS = st.sampled_from(
    ["100", "110", "90", "105", "0", "-0", "5", "0.5", ".5", "5.", "+5", "1e2", "1E-3", " 7 "]
    + ["-1", "", "abc", "NaN", "inf", "-Infinity", "1_0", "١", "1" * 61, "0" * 120 + "9"]
    + ["1e60", "1e61", "100.000"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(TIME_CELLS, st.lists(VALUE_CELLS, min_size=5, max_size=5)),
        min_size=1,
        max_size=30,
    ),
    timeframe=st.sampled_from(["15m", "1m", "1M", "1h"]),
)
def test_generated_files_same_as_reference(
    rows: list[tuple[str, list[str]]], timeframe: str
) -> None:
    lines = [HEADER, *(",".join([moment, *values]) for moment, values in rows)]
    series = {**SERIES, "timeframe": timeframe}
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), lines)
        reference = ref_clean(ref_load_csv(path), series)
        assert_same(load_and_clean(path, **series), reference)

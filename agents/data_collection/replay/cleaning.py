"""Turn raw rows into a replayable candle series, repairing what is safe and refusing the rest.

Every decision is counted in the ``CleaningReport``; nothing is dropped silently and nothing
is invented (gaps are reported, never filled: a replay must only show candles that existed).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from operator import lt

from pydantic import TypeAdapter, ValidationError

from agents.data_collection.replay.grid import is_aligned, next_slot, slots_between
from agents.data_collection.replay.loading import RawBar
from agents.data_collection.replay.report import CleaningReport, CleanResult, Gap, Refusal
from protocol import Candle, ExchangeId, NonEmptyStr, Symbol, timeframe_seconds

__all__ = ["PROGRESS_EVERY", "clean", "clean_rows", "validation_reason"]

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


class _Judge:
    """Judges the rows of one series into candles or refusals (see ``clean``).

    What every row shares is worked out once; each row goes through ``is_aligned`` and
    ``Candle.closed``, whose full validation is what accepts or refuses it.
    """

    __slots__ = (
        "_exchange",
        "_now",
        "_report",
        "_source",
        "_step",
        "_symbol",
        "_timeframe",
    )

    def __init__(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        source: str,
        now: datetime | None,
        report: CleaningReport,
    ) -> None:
        self._exchange = exchange
        self._symbol = symbol
        self._timeframe = timeframe
        self._source = source
        self._now = now
        self._report = report
        # The candle's length (a month counts as 30 days, as in Candle.closed).
        self._step = timedelta(seconds=timeframe_seconds(timeframe))

    def _refuse(self, bar: RawBar, counter: str, reason: str) -> None:
        report = self._report
        setattr(report, counter, getattr(report, counter) + 1)
        report.refusals.append(Refusal(bar.row, bar.open_time, reason))

    def __call__(self, bar: RawBar) -> Candle | None:
        """The candle this row stands for, or None after recording its refusal."""
        if isinstance(bar.open_time, str):
            shown = repr(bar.open_time) if bar.open_time else "empty"
            self._refuse(bar, "invalid_refused", f"open_time: not a readable timestamp ({shown})")
            return None
        if bar.utc_offset:
            self._report.timezone_normalised += 1
        # A time off the grid is what a data vendor writes for a bar still forming when the
        # file was cut (13:50:02 in a 15m series); its prices cover part of an interval only.
        # The last-bar case "flat prices, volume 0" needs no rule of its own: it is off-grid.
        if not is_aligned(bar.open_time, self._timeframe):
            self._refuse(bar, "partial_bars_refused", _PARTIAL.format(timeframe=self._timeframe))
            return None
        try:
            candle = Candle.closed(
                source=self._source,
                exchange=self._exchange,
                symbol=self._symbol,
                timeframe=self._timeframe,
                open_time=bar.open_time,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
                # The moment the candle became final, not the wall clock: replaying the same
                # file must give the same messages, byte for byte.
                produced_at=bar.open_time + self._step,
            )
        except ValidationError as exc:
            self._refuse(bar, "invalid_refused", validation_reason(exc))
            return None
        except OverflowError:
            # open_time + one candle is beyond datetime's range: this row only, not the file.
            self._refuse(bar, "invalid_refused", "open_time: the candle would close after the year 9999")
            return None
        now = self._now
        if now is not None and candle.close_time > now:
            self._refuse(
                bar,
                "not_closed_refused",
                f"not closed yet (closes {candle.close_time.isoformat()}, now {now.isoformat()})",
            )
            return None
        return candle


def _out_of_order(times: Sequence[datetime]) -> int:
    """Fewest rows that must move to put ``times`` (distinct) in order: n - longest increasing
    subsequence. Unlike "rows behind the running maximum", one early row from the future
    counts as one misplaced row, not as every row after it."""
    if all(map(lt, times, islice(times, 1, None))):
        return 0  # the usual file: already in order
    tails: list[datetime] = []
    for moment in times:
        index = bisect_left(tails, moment)
        if index == len(tails):
            tails.append(moment)
        else:
            tails[index] = moment
    return len(times) - len(tails)


def _gaps(times: Sequence[datetime], timeframe: str) -> list[Gap]:
    """Gaps between consecutive open times (sorted, aligned, UTC)."""
    gaps = []
    for before, after in zip(times, times[1:], strict=False):
        missing = slots_between(before, after, timeframe)
        if missing > 0:
            gaps.append(Gap(next_slot(before, timeframe), after, missing))
    return gaps


# Rows between two progress calls: often enough for a progress bar, rare enough to cost nothing.
PROGRESS_EVERY = 5_000


def clean(
    bars: Iterable[RawBar],
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str = "data_collection",
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CleanResult:
    """Validate, de-duplicate and order raw rows into closed candles on the timeframe grid.

    Repaired (and counted): offsets converted to UTC, duplicates dropped, rows sorted.
    Refused (each with a reason): unreadable or invalid rows (the Candle model's own
    validation, so the reasons are the bus's), bars off the grid (partial), and with
    ``now`` given, bars that close after ``now``. Zero-volume bars are kept: a quiet
    interval is real. Gaps are listed, not filled. ``ValueError`` for a bad exchange,
    symbol, timeframe, source or a naive ``now``.

    ``progress(rows_done, rows_total)``, when given, is called before the first row, every
    ``PROGRESS_EVERY`` rows and once at the end with ``(rows_total, rows_total)``.
    """
    rows = list(bars)
    return clean_rows(
        rows,
        len(rows),
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        source=source,
        now=now,
        progress=progress,
    )


def _keep(kept: dict[datetime, Candle], candle: Candle, report: CleaningReport) -> None:
    """Keep ``candle``, superseding an earlier candle with its open_time.

    ``kept`` maps open_time to the candle of the LAST row with that open_time, in the file
    order of those rows: a superseded key is removed and inserted again, so it moves.
    """
    open_time = candle.open_time
    earlier = kept.pop(open_time, None)
    if earlier is not None:
        # Keep the LAST row. Files like this are concatenated downloads; the later part was
        # fetched later, after the vendor finalised bars that were still forming or being
        # revised (in the package data the earlier copy of 13:45 on 2021-10-27 is a flat bar
        # of one price, the later one the full bar). Same rule for identical rows, so the
        # survivor's position never depends on whether values matched.
        if _values(earlier) == _values(candle):
            report.duplicates_dropped += 1
        else:
            report.conflicting_duplicates += 1
    kept[open_time] = candle


def clean_rows(
    bars: Iterable[RawBar],
    total: int,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str = "data_collection",
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CleanResult:
    """``clean`` for rows that may be parsed as they are iterated (``loading.BarSource``):
    ``total`` is how many ``bars`` yields, known before the first is parsed."""
    _check_series(exchange, symbol, timeframe, source, now)
    report = CleaningReport(exchange, symbol, timeframe, rows_read=total)
    judge = _Judge(exchange, symbol, timeframe, source, now, report)
    kept: dict[datetime, Candle] = {}
    done = 0
    if progress is not None:
        progress(0, total)
    for done, bar in enumerate(bars, start=1):  # noqa: B007 - done is read afterwards
        candle = judge(bar)
        if candle is not None:
            _keep(kept, candle, report)
        if progress is not None and done % PROGRESS_EVERY == 0 and done < total:
            progress(done, total)
    if done != total:
        raise ValueError(f"clean_rows was told {total} rows and got {done}")
    if progress is not None and total > 0:
        progress(total, total)

    times = list(kept)  # the survivors' open times, in file order
    report.reordered = _out_of_order(times)
    if report.reordered:
        times.sort()
    candles = [kept[moment] for moment in times]
    report.candles = len(candles)
    report.zero_volume = sum(1 for candle in candles if candle.volume == 0)
    report.gaps = _gaps(times, timeframe)
    if candles:
        report.first_open_time, report.last_open_time = times[0], times[-1]
    return CleanResult(candles=candles, report=report)

"""What cleaning did to a source: counts per repair and refusal, refused rows, gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from protocol import Candle

__all__ = ["CleanResult", "CleaningReport", "Gap", "Refusal"]

# Enough to diagnose a file from the log line without flooding it when a whole file is bad.
_LISTED_IN_LOGS = 50


class Refusal(NamedTuple):
    """A source row that did not become a candle, and why."""

    row: int
    open_time: datetime | str | None
    reason: str


class Gap(NamedTuple):
    """Missing grid slots between two consecutive candles (same meaning as ``DataGap``):
    ``start`` is the open_time of the first missing candle, ``end`` the open_time of the
    candle after the gap, ``missing`` how many candles are absent."""

    start: datetime
    end: datetime
    missing: int


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(slots=True)
class CleaningReport:
    """Counts of everything cleaning repaired or refused.

    Bases of the counts: ``rows_read`` is every source row; ``timezone_normalised`` counts
    rows read with a UTC offset other than +00:00; ``duplicates_dropped`` and
    ``conflicting_duplicates`` count rows superseded by a later row with the same open_time
    (identical or different values, compared as numbers: "58938.0" equals "58938");
    ``reordered`` counts surviving rows that were out of order (the fewest rows that had to
    move); ``zero_volume`` counts kept candles with volume 0; the ``*_refused`` counts
    partition ``refusals``.
    """

    exchange: str
    symbol: str
    timeframe: str
    rows_read: int = 0
    candles: int = 0
    first_open_time: datetime | None = None
    last_open_time: datetime | None = None
    timezone_normalised: int = 0
    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0
    reordered: int = 0
    partial_bars_refused: int = 0
    not_closed_refused: int = 0
    invalid_refused: int = 0
    zero_volume: int = 0
    gaps: list[Gap] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def missing_candles(self) -> int:
        """Grid slots absent inside the series (the sum over ``gaps``)."""
        return sum(gap.missing for gap in self.gaps)

    @property
    def refused(self) -> int:
        """Rows refused for any reason."""
        return len(self.refusals)

    def summary(self) -> str:
        """One readable line, e.g. for a CLI or the first log line of a replay."""
        first, last = self.first_open_time, self.last_open_time
        span = ""
        if first and last:
            span = f" from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
        return (
            f"{self.exchange} {self.symbol} {self.timeframe}: {self.rows_read} rows -> "
            f"{self.candles} candles{span}; refused {self.refused} "
            f"(partial {self.partial_bars_refused}, not closed {self.not_closed_refused}, "
            f"invalid {self.invalid_refused}); dropped {self.duplicates_dropped} exact and "
            f"{self.conflicting_duplicates} conflicting duplicates (kept the last); "
            f"{self.timezone_normalised} times normalised to UTC; {self.reordered} rows reordered; "
            f"{self.zero_volume} zero-volume candles kept; {len(self.gaps)} gaps "
            f"({self.missing_candles} missing candles, not filled)"
        )

    def as_dict(self, listed: int | None = _LISTED_IN_LOGS) -> dict[str, Any]:
        """JSON-ready fields for a structured log line.

        Gaps and refusals are listed up to ``listed`` each (None: all), with the totals kept
        in the counts. The series identity (exchange, symbol, timeframe) is left out: the
        caller's log context already carries it, and repeating it would clash there.
        """
        gaps = self.gaps if listed is None else self.gaps[:listed]
        refusals = self.refusals if listed is None else self.refusals[:listed]
        return {
            "rows_read": self.rows_read,
            "candles": self.candles,
            "first_open_time": _iso(self.first_open_time),
            "last_open_time": _iso(self.last_open_time),
            "timezone_normalised": self.timezone_normalised,
            "duplicates_dropped": self.duplicates_dropped,
            "conflicting_duplicates": self.conflicting_duplicates,
            "reordered": self.reordered,
            "partial_bars_refused": self.partial_bars_refused,
            "not_closed_refused": self.not_closed_refused,
            "invalid_refused": self.invalid_refused,
            "zero_volume": self.zero_volume,
            "missing_candles": self.missing_candles,
            "gap_count": len(self.gaps),
            "gaps": [
                {"start": _iso(g.start), "end": _iso(g.end), "missing": g.missing} for g in gaps
            ],
            "refusals": [
                {"row": r.row, "open_time": _iso(r.open_time), "reason": r.reason} for r in refusals
            ],
        }


@dataclass(slots=True)
class CleanResult:
    """Candles ready to replay (strictly increasing, grid-aligned) and the report."""

    candles: list[Candle]
    report: CleaningReport

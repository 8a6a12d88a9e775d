"""The price store: candles and indicator snapshots in InfluxDB via the v1-compatible API.

Schema (see claudedocs/decisions/0004-influxdb-v1-api.md): measurement ``candle`` and
``indicators``, tags exchange/symbol/timeframe, float fields, time = candle open time in ms.
A series plus a timestamp is one point, so writing the same candle again replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from infra.influx.client import InfluxHttp
from infra.influx.errors import PriceStoreError
from infra.influx.lineprotocol import (
    CANDLE_FIELDS,
    CANDLE_MEASUREMENT,
    INDICATOR_MEASUREMENT,
    SERIES_TAGS,
    candle_line,
    indicator_line,
    quote_identifier,
    quote_literal,
    rfc3339_ms,
)
from infra.influx.rows import candle_from_row, moment_from_row, normalise_series, snapshot_from_row
from infra.logging import get_logger
from protocol import Candle, IndicatorSnapshot

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["InfluxPriceStore", "from_settings"]

# Range reads are paged so no server row limit (max-row-limit in 1.x) can truncate a history.
_PAGE: Final = 5000
_ONE_MS: Final = timedelta(milliseconds=1)
_log = get_logger(component="influx")


class InfluxPriceStore:
    """Async store of candles and indicator snapshots.

    ``healthy`` is False after a call exhausted its retries and True again after the next call
    the server answered; ``last_error`` holds the latest failure text (None after a success).
    """

    def __init__(
        self,
        url: str,
        database: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        retention_policy: str | None = None,
    ) -> None:
        self._http = InfluxHttp(
            url,
            database,
            token,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff=backoff,
            retention_policy=retention_policy,
        )
        self._has_token = token is not None

    def __repr__(self) -> str:
        token = "'***'" if self._has_token else "None"
        return f"InfluxPriceStore(url={self._http.safe_url!r}, database={self.database!r}, token={token})"

    # ------------------------------------------------------------------ lifecycle and health

    @property
    def database(self) -> str:
        return self._http.database

    @property
    def healthy(self) -> bool:
        return self._http.healthy

    @property
    def last_error(self) -> str | None:
        return self._http.last_error

    @property
    def request_attempts(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self._http.attempts

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.close()

    async def ping(self) -> bool:
        """True when the server answers /ping (one attempt, never raises)."""
        return await self._http.ping()

    async def ensure_database(self) -> None:
        """CREATE DATABASE (idempotent on 1.x). On 2.x/3 databases are buckets created by an
        operator (or on first write), so 401/403/404 means "managed elsewhere", not a failure."""
        try:
            await self._http.query(f"CREATE DATABASE {quote_identifier(self.database)}", mutate=True)
        except PriceStoreError as exc:
            if type(exc) is not PriceStoreError or exc.status not in (401, 403, 404):
                raise
            self._http.last_error = None
            _log.info("influx_database_managed_elsewhere", database=self.database, status=exc.status)

    # ------------------------------------------------------------------ raw access

    async def write_lines(self, lines: Sequence[str]) -> None:
        """Write prepared line-protocol points (ms precision), batched."""
        if lines:
            await self._http.write(lines)

    async def query(self, statement: str) -> list[dict[str, Any]]:
        """Run one read-only InfluxQL statement; rows as dicts, ``time`` in epoch ms."""
        return await self._http.query(statement)

    # ------------------------------------------------------------------ candles

    async def write_candles(self, candles: Sequence[Candle]) -> None:
        """Write candles (one POST per 5000); rewriting a candle replaces its point."""
        await self.write_lines([candle_line(candle) for candle in candles])

    async def latest_candle(
        self, exchange: str, symbol: str, timeframe: str, opened_before: datetime | None = None
    ) -> Candle | None:
        """The newest stored candle of the series (with open_time < ``opened_before``), or None."""
        where = _series(exchange, symbol, timeframe)
        if opened_before is not None:
            where += f" AND time < {quote_literal(rfc3339_ms(opened_before))}"
        rows = await self._select(CANDLE_MEASUREMENT, _CANDLE_COLUMNS, where, "DESC", 1)
        return candle_from_row(rows[0], exchange, symbol, timeframe) if rows else None

    async def latest_candle_age(
        self, exchange: str, symbol: str, timeframe: str, now: datetime | None = None
    ) -> timedelta | None:
        """now - close_time of the newest candle, or None when the series is empty."""
        candle = await self.latest_candle(exchange, symbol, timeframe)
        if candle is None:
            return None
        return (now or datetime.now(UTC)) - candle.close_time

    async def candles_between(
        self, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """Candles with start <= open_time < end, oldest first."""
        rows = await self._range(CANDLE_MEASUREMENT, _CANDLE_COLUMNS, exchange, symbol, timeframe, start, end)
        return [candle_from_row(row, exchange, symbol, timeframe) for row in rows]

    async def last_candles(
        self, exchange: str, symbol: str, timeframe: str, n: int, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Candle]:
        """The newest ``n`` candles (with ``start <= open_time < end`` when given), oldest first;
        never more than ``n`` rows are read, however wide the range."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return []
        where = _series(exchange, symbol, timeframe)
        if start is not None:
            where += f" AND time >= {quote_literal(rfc3339_ms(start))}"
        if end is not None:
            where += f" AND time < {quote_literal(rfc3339_ms(end))}"
        rows = await self._select(CANDLE_MEASUREMENT, _CANDLE_COLUMNS, where, "DESC", n)
        return [candle_from_row(row, exchange, symbol, timeframe) for row in reversed(rows)]

    async def candle_count(self, exchange: str, symbol: str, timeframe: str) -> int:
        """How many candles the series holds."""
        statement = (
            f'SELECT COUNT("close") FROM {self._measurement(CANDLE_MEASUREMENT)} '
            f"WHERE {_series(exchange, symbol, timeframe)}"
        )
        rows = await self._http.query(statement)
        return int(rows[0].get("count") or 0) if rows else 0

    # ------------------------------------------------------------------ indicators

    async def write_indicators(self, snapshots: Sequence[IndicatorSnapshot]) -> None:
        """Write snapshots; null indicators are omitted, ``close`` is always written."""
        await self.write_lines([indicator_line(snapshot) for snapshot in snapshots])

    async def latest_indicators(self, exchange: str, symbol: str, timeframe: str) -> IndicatorSnapshot | None:
        """The newest stored snapshot of the series, or None."""
        rows = await self._select(INDICATOR_MEASUREMENT, "*", _series(exchange, symbol, timeframe), "DESC", 1)
        return snapshot_from_row(rows[0], exchange, symbol, timeframe) if rows else None

    async def indicators_between(
        self, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[IndicatorSnapshot]:
        """Snapshots with start <= candle_time < end, oldest first."""
        rows = await self._range(INDICATOR_MEASUREMENT, "*", exchange, symbol, timeframe, start, end)
        return [snapshot_from_row(row, exchange, symbol, timeframe) for row in rows]

    # ------------------------------------------------------------------ internals

    def _measurement(self, name: str) -> str:
        # Two-part names are retention_policy.measurement; the database comes from ?db=.
        rp = self._http.retention_policy
        return f"{quote_identifier(rp)}.{quote_identifier(name)}" if rp else quote_identifier(name)

    async def _select(self, measurement: str, columns: str, where: str, order: str, limit: int) -> list[dict[str, Any]]:
        statement = (
            f"SELECT {columns} FROM {self._measurement(measurement)} WHERE {where} "
            f"ORDER BY time {order} LIMIT {int(limit)}"
        )
        return await self._http.query(statement)

    async def _range(
        self, measurement: str, columns: str, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = start
        series = _series(exchange, symbol, timeframe)
        while cursor < end:
            where = f"{series} AND time >= {quote_literal(rfc3339_ms(cursor))} AND time < {quote_literal(rfc3339_ms(end))}"
            page = await self._select(measurement, columns, where, "ASC", _PAGE)
            rows.extend(page)
            if len(page) < _PAGE:
                break
            cursor = moment_from_row(page[-1]["time"]) + _ONE_MS
        return rows


_CANDLE_COLUMNS: Final = ", ".join(quote_identifier(name) for name in CANDLE_FIELDS)


def _series(exchange: str, symbol: str, timeframe: str) -> str:
    """The WHERE clause selecting one series by its three tags."""
    exchange, symbol = normalise_series(exchange, symbol)
    values = (exchange, symbol, timeframe)
    return " AND ".join(f"{quote_identifier(tag)} = {quote_literal(value)}" for tag, value in zip(SERIES_TAGS, values, strict=True))


def from_settings(settings: Settings) -> InfluxPriceStore:
    """A store configured from INFLUXDB_URL, INFLUXDB_DATABASE and INFLUXDB_TOKEN."""
    token = settings.influxdb_token.get_secret_value() if settings.influxdb_token else None
    return InfluxPriceStore(settings.influxdb_url, settings.influxdb_database, token)

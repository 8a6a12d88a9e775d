"""HTTP transport of the price store: the v1-compatible `/write`, `/query` and `/ping` endpoints,
with bounded retries and a health flag.

Retrying is safe for every request this module sends: a write of the same point (series +
timestamp) overwrites it, queries are reads, and CREATE DATABASE is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from infra.influx.errors import PriceStoreError, PriceStoreUnavailable
from infra.logging import get_logger
from infra.settings import redact_url

__all__ = ["MAX_BATCH_LINES", "InfluxHttp"]

# InfluxDB recommends batches of about 5000 points; larger bodies risk the server's size limit.
MAX_BATCH_LINES: Final = 5000
# No single wait longer than this, whatever max_attempts and backoff say: callers have deadlines.
_MAX_DELAY: Final = 30.0
_MAX_ERROR_CHARS: Final = 500

_log = get_logger(component="influx")


def _error_text(response: httpx.Response) -> str:
    """Influx's own explanation: the JSON `error` (1.x, 3) or `message` (2.x), else the header
    1.x sets, else the raw body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "message"):
            if isinstance(payload.get(key), str) and payload[key]:
                return str(payload[key])[:_MAX_ERROR_CHARS]
    header = response.headers.get("X-Influxdb-Error")
    if header:
        return header[:_MAX_ERROR_CHARS]
    return (response.text.strip() or response.reason_phrase)[:_MAX_ERROR_CHARS]


def _retry_after(response: httpx.Response | None) -> float:
    # 429/503 may say how long to wait; honour it (bounded) rather than hammering the server.
    if response is None:
        return 0.0
    try:
        return min(float(response.headers.get("Retry-After", "0")), _MAX_DELAY)
    except ValueError:
        return 0.0


class InfluxHttp:
    """One httpx client bound to one InfluxDB database (or 2.x bucket via DBRP, or 3 database)."""

    def __init__(
        self,
        url: str,
        database: str,
        token: str | None,
        *,
        timeout: float,
        max_attempts: int,
        backoff: float,
        retention_policy: str | None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        if not database:
            raise ValueError("database must not be empty")
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.healthy = True
        self.last_error: str | None = None
        self.attempts = 0  # HTTP requests sent (every retry counts), for tests and metrics
        # The token lives only in the client's headers; httpx masks Authorization in its repr.
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=headers)

    @property
    def safe_url(self) -> str:
        """The server URL with any password redacted, for messages and logs."""
        return redact_url(self.url)

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> bool:
        """One /ping, no retries: True when the server answers 2xx. Leaves `healthy` alone,
        which reflects real calls."""
        try:
            response = await self._client.get("/ping")
        except httpx.HTTPError:
            return False
        return response.is_success

    async def write(self, lines: Sequence[str]) -> None:
        """POST the lines with precision=ms, one request per batch of MAX_BATCH_LINES."""
        params = {"db": self.database, "precision": "ms"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        for start in range(0, len(lines), MAX_BATCH_LINES):
            body = "\n".join(lines[start : start + MAX_BATCH_LINES]) + "\n"
            await self.request("POST", "/write", params=params, content=body.encode("utf-8"))

    async def query(self, statement: str, *, mutate: bool = False) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; rows as dicts (series tags merged in), times in epoch ms.

        Reads use GET and statements that change state use POST, as the 1.x API requires.
        """
        if mutate:
            response = await self.request("POST", "/query", data={"q": statement, "db": self.database})
        else:
            params = {"db": self.database, "q": statement, "epoch": "ms"}
            response = await self.request("GET", "/query", params=params)
        return self._rows(response, statement)

    def _rows(self, response: httpx.Response, statement: str) -> list[dict[str, Any]]:
        try:
            payload = response.json()
        except ValueError:
            raise self._refused(f"InfluxDB answered a query with non-JSON: {response.text[:200]!r}", None) from None
        if not isinstance(payload, dict):
            raise self._refused(f"InfluxDB answered a query with unexpected JSON: {payload!r:.200}", None)
        if payload.get("error"):
            raise self._refused(f"InfluxDB query failed: {payload['error']} (query: {statement})", None)
        rows: list[dict[str, Any]] = []
        for result in payload.get("results") or []:
            if result.get("error"):
                raise self._refused(f"InfluxDB query failed: {result['error']} (query: {statement})", None)
            # A truncated answer (server row limit) must not pass for the whole history.
            if result.get("partial"):
                raise self._refused(f"InfluxDB returned a partial result (query: {statement})", None)
            for series in result.get("series") or []:
                if series.get("partial"):
                    raise self._refused(f"InfluxDB returned a partial series (query: {statement})", None)
                columns = series.get("columns") or []
                tags = series.get("tags") or {}
                rows.extend({**tags, **dict(zip(columns, values, strict=False))} for values in series.get("values") or [])
        return rows

    def _refused(self, message: str, status: int | None) -> PriceStoreError:
        self.last_error = message
        return PriceStoreError(message, status=status)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries on connection errors, timeouts, 5xx and 429; raise
        PriceStoreError at once on any other 4xx, PriceStoreUnavailable when attempts run out."""
        problem = ""
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            response: httpx.Response | None = None
            try:
                response = await self._client.request(method, path, params=params, content=content, data=data)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                detail = str(exc)
                problem = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
                status = None
            else:
                code = response.status_code
                if code == 429 or code >= 500:
                    problem, status = f"HTTP {code}: {_error_text(response)}", code
                elif code >= 400:
                    # The server is up and answered: healthy, but this request is wrong.
                    self.healthy = True
                    raise self._refused(f"InfluxDB refused {method} {path} (HTTP {code}): {_error_text(response)}", code)
                else:
                    self.healthy, self.last_error = True, None
                    return response
            if attempt < self.max_attempts:
                delay = min(max(self.backoff * 2 ** (attempt - 1), _retry_after(response)), _MAX_DELAY)
                _log.warning(
                    "influx_retry", url=self.safe_url, path=path, attempt=attempt, problem=problem, delay=delay
                )
                await asyncio.sleep(delay)
        message = f"InfluxDB at {self.safe_url} unavailable after {self.max_attempts} attempts ({method} {path}): {problem}"
        self.healthy, self.last_error = False, message
        _log.error("influx_unavailable", url=self.safe_url, path=path, attempts=self.max_attempts, problem=problem)
        raise PriceStoreUnavailable(message, attempts=self.max_attempts, status=status)

"""A local HTTP server that speaks the Binance spot REST endpoints ccxt uses for market data.

Tests point ccxt at it (``make_exchange("binance", api_base=fake.url)``). It serves ping, time,
exchangeInfo (the saved snapshot) and klines with Binance's paging rules, records every request
and can answer the next requests with 429 / 418 / 503. Routes live in a table (``add_route``).
The signed account and order endpoints (``fake.account``, with real HMAC signature checks) are in
``tests.support.fake_binance_account``; ``hold_next`` makes the server act on a request and then
not answer in time (the order exists, the client sees a timeout).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any

from aiohttp import web

from infra.exchanges import snapshot_exchange_info
from protocol import Candle, timeframe_seconds
from tests.support.fake_binance_account import TEST_API_KEY, TEST_SECRET, FakeAccount

__all__ = [
    "KLINES",
    "ORDER",
    "TEST_API_KEY",
    "TEST_SECRET",
    "FakeAccount",
    "FakeBinance",
    "Fault",
    "Hold",
    "LoggedRequest",
    "klines_from_candles",
    "make_klines",
    "minutes",
    "utc",
]

Kline = list[Any]  # Binance row: [openTime, "o", "h", "l", "c", "v", closeTime, "qv", n, "tb", "tq", "0"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KLINES = "/api/v3/klines"
ORDER = "/api/v3/order"
_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 500


def make_klines(
    start: datetime,
    count: int,
    interval: str = "1m",
    *,
    skip: Iterable[int] = (),
    price: float = 100.0,
) -> list[Kline]:
    """``count`` consecutive klines from ``start`` in Binance's row format; indexes in ``skip``
    are left out (holes). Prices drift by index so every candle is distinguishable."""
    step = timeframe_seconds(interval) * 1000
    first = int(start.timestamp() * 1000)
    skipped = set(skip)
    rows = []
    for index in range(count):
        if index in skipped:
            continue
        open_ms = first + index * step
        base = price + index * 0.01
        rows.append(
            [
                open_ms,
                f"{base:.8f}",
                f"{base + 0.5:.8f}",
                f"{base - 0.5:.8f}",
                f"{base + 0.25:.8f}",
                f"{1 + index % 7:.8f}",
                open_ms + step - 1,
                f"{base * (1 + index % 7):.8f}",
                10 + index % 5,
                "0.50000000",
                f"{base / 2:.8f}",
                "0",
            ]
        )
    return rows


def klines_from_candles(
    candles: Sequence[Candle], start: datetime, interval: str = "1s", tick: Decimal = Decimal("0.01")
) -> list[Kline]:
    """Real candles (any timeframe) re-timed as consecutive ``interval`` klines from ``start``:
    the prices (on ``tick``) and volumes of real market data on a fast clock."""
    step = timeframe_seconds(interval) * 1000
    first = int(start.timestamp() * 1000)

    def on_tick(price: Decimal) -> str:
        # Binance prices sit on the market's tick (0.01 for BTC/USDT); so does every fill.
        return str(price.quantize(tick))

    rows = []
    for index, c in enumerate(candles):
        open_ms = first + index * step
        rows.append([open_ms, on_tick(c.open), on_tick(c.high), on_tick(c.low), on_tick(c.close), str(c.volume),
                     open_ms + step - 1, str(c.close * c.volume), 1, "0", "0", "0"])
    return rows


def _market_id(symbol: str) -> str:
    # Tests may name series "BTC/USDT" or "BTCUSDT"; Binance only knows the latter.
    return symbol.replace("/", "").upper()


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request the fake answered."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    at: float  # time.monotonic() when it was answered


@dataclass(slots=True)
class Fault:
    """Answer the next ``remaining`` matching requests with ``status`` instead of data."""

    status: int
    remaining: int
    retry_after: float | None = 0
    path: str | None = KLINES  # None: any path
    method: str | None = None  # None: any method


@dataclass(slots=True)
class Hold:
    """Handle the next ``remaining`` requests to ``path`` normally, then sit on the answer for
    ``seconds`` (the effects exist on the server; a client with a shorter timeout gives up)."""

    path: str
    remaining: int
    seconds: float
    method: str | None = None  # None: any method


@dataclass
class FakeBinance:
    """Binance spot REST on 127.0.0.1 (random port). ``async with FakeBinance(series) as fake``."""

    series: Mapping[str, Sequence[Kline]] = field(default_factory=dict)
    interval: str = "1m"
    # Called after each klines answer (e.g. to make the exchange fill a hole "later").
    on_klines: Callable[[FakeBinance, LoggedRequest], None] | None = None
    # Starting balances of the signed account (asset -> amount), e.g. {"USDT": "1000"}.
    balances: Mapping[str, str] = field(default_factory=dict)
    # Live market: klines are served only once they opened (the newest one still forming, as
    # Binance does) and MARKET orders fill at the close of the newest closed candle.
    live: bool = False

    def __post_init__(self) -> None:
        self._klines: dict[str, dict[int, Kline]] = {}
        for symbol, rows in self.series.items():
            self.add_klines(symbol, rows)
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.weight = 0  # reported like Binance's X-MBX-USED-WEIGHT-1M header
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/api/v3/ping"): self._ping,
            ("GET", "/api/v3/time"): self._time,
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", KLINES): self._klines_route,
        }
        self.account = FakeAccount(api_key=TEST_API_KEY, secret=TEST_SECRET, balances=self.balances)
        self.routes.update(self.account.routes())
        if self.live:
            self.account.price_of = self.live_close
        self.holds: list[Hold] = []
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- test controls -------------------------------------------------------------------
    def add_klines(self, symbol: str, rows: Iterable[Kline]) -> None:
        """Add (or replace, by open time) klines of ``symbol``."""
        book = self._klines.setdefault(_market_id(symbol), {})
        for row in rows:
            book[int(row[0])] = list(row)

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        retry_after: float | None = 0,
        path: str | None = KLINES,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` / with ``method``; None: any) with HTTP
        ``status``."""
        self.faults.append(Fault(status, count, retry_after, path, method))

    def hold_next(self, count: int, seconds: float, *, path: str = ORDER, method: str | None = "POST") -> None:
        """Act on the next ``count`` ``method`` requests to ``path``, then delay each answer by
        ``seconds``."""
        self.holds.append(Hold(path, count, seconds, method))

    def live_close(self, symbol: str) -> Decimal | None:
        """Close of the newest candle of ``symbol`` ("BTCUSDT") closed by now; None if none."""
        step = timeframe_seconds(self.interval) * 1000
        now = int(time.time() * 1000)
        closed = [t for t in self._klines.get(symbol, {}) if t + step <= now]
        return Decimal(self._klines[symbol][max(closed)][4]) if closed else None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler`` (for endpoints added by later tests)."""
        self.routes[(method.upper(), path)] = handler

    def requests_to(self, path: str = KLINES) -> list[LoggedRequest]:
        return [request for request in self.requests if request.path == path]

    # --- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> FakeBinance:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Bind the socket ourselves so the random port is known without private attributes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Held answers end now, so shutdown does not wait for them.
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- dispatch ------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        response = self._injected_fault(request.path, request.method)
        if response is None:
            handler = self.routes.get((request.method, request.path))
            if handler is None:
                response = _error(404, -1, f"fake binance: no route {request.method} {request.path}")
            else:
                response = await handler(request)
        self.weight += 1
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight)
        logged = LoggedRequest(request.method, request.path, dict(request.query), response.status, time.monotonic())
        self.requests.append(logged)
        if request.path == KLINES and response.status == 200 and self.on_klines is not None:
            self.on_klines(self, logged)
        # Logged first: the request happened even if the client gives up waiting for its answer.
        await self._maybe_hold(request.path, request.method)
        return response

    async def _maybe_hold(self, path: str, method: str) -> None:
        for hold in self.holds:
            if hold.remaining > 0 and hold.path == path and hold.method in (None, method):
                hold.remaining -= 1
                try:
                    await asyncio.wait_for(self._released.wait(), hold.seconds)
                except TimeoutError:
                    pass
                return

    def _injected_fault(self, path: str, method: str) -> web.Response | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.path in (None, path) and fault.method in (None, method):
                fault.remaining -= 1
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                if fault.status == 429:
                    return _error(429, -1003, "Too many requests; current limit of IP(127.0.0.1) request weight is 6000 per MINUTE.", headers)
                if fault.status == 418:
                    until = int(time.time() * 1000) + 120_000
                    return _error(418, -1003, f"Way too much request weight used; IP banned until {until}.", headers)
                # Binance's 503s are often not JSON at all; plain text is what ccxt maps to
                # ExchangeNotAvailable.
                return web.Response(status=fault.status, text="Service Unavailable.", headers=headers)
        return None

    # --- routes --------------------------------------------------------------------------
    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        info = snapshot_exchange_info("binance")
        info["serverTime"] = int(time.time() * 1000)
        return web.json_response(info)

    async def _klines_route(self, request: web.Request) -> web.Response:
        query = request.query
        symbol = query.get("symbol")
        if not symbol:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if query.get("interval") != self.interval:
            return _error(400, -1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", _DEFAULT_LIMIT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return _error(400, -1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= _MAX_LIMIT:
            return _error(400, -1130, "Invalid data sent for a parameter.")
        book = self._klines.get(symbol)
        if book is None:
            return _error(400, -1121, "Invalid symbol.")
        now = int(time.time() * 1000)
        opens = sorted(
            t for t in book
            if (start is None or t >= start) and (end is None or t <= end) and (not self.live or t <= now)
        )
        # Binance pages forward from startTime; without one it returns the newest candles.
        chosen = opens[:limit] if start is not None else opens[-limit:]
        return web.json_response([book[t] for t in chosen])


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "msg": message}),
        content_type="application/json",
        headers=dict(headers or {}),
    )


def utc(*args: int) -> datetime:
    """Shorthand for a UTC datetime in tests."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)

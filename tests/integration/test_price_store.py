"""The InfluxDB price store against a real influxd (and a scripted fake for failure modes)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from infra.influx import InfluxPriceStore, PriceStoreError, PriceStoreUnavailable, line
from protocol import Candle, IndicatorSnapshot, Indicators

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TOKEN = "s3cret-token-value"


def candle(i: int, *, close: str | None = None, exchange: str = "binance", symbol: str = "BTC/USDT") -> Candle:
    base = Decimal("43443.0625") + i
    price = Decimal(close) if close is not None else base
    return Candle.closed(
        source="test", exchange=exchange, symbol=symbol, timeframe="1m", open_time=T0 + i * MINUTE,
        open=base, high=max(base, price) + 1, low=Decimal("0.00012345"), close=price, volume=Decimal("0.00012345"),
    )


@pytest.fixture
async def store(influxdb_database: tuple[str, str]) -> AsyncIterator[InfluxPriceStore]:
    url, database = influxdb_database
    async with InfluxPriceStore(url, database, max_attempts=2, backoff=0.01) as price_store:
        await price_store.ensure_database()  # idempotent on 1.x: the fixture already created it
        yield price_store


async def test_candle_round_trip_is_exact_and_keeps_ids(store: InfluxPriceStore) -> None:
    original = Candle.closed(
        source="data_collection", exchange="binance", symbol="BTC/USDT", timeframe="1m", open_time=T0,
        open="43443.0625", high="43500.5", low="0.00012345", close="43443.0625", volume="1234.56789",
    )
    await store.write_candles([original])
    back = await store.latest_candle("binance", "BTC/USDT", "1m")
    assert back is not None
    assert (back.open, back.high, back.low, back.close, back.volume) == (
        Decimal("43443.0625"), Decimal("43500.5"), Decimal("0.00012345"), Decimal("43443.0625"), Decimal("1234.56789"),
    )
    assert back.message_id == original.message_id and back.correlation_id == original.correlation_id
    assert (back.open_time, back.close_time, back.source) == (original.open_time, original.close_time, "influxdb")
    assert store.healthy and store.last_error is None


async def test_rewrite_is_idempotent_and_replaces_the_point(store: InfluxPriceStore) -> None:
    candles = [candle(i) for i in range(10)]
    await store.write_candles(candles)
    await store.write_candles(candles)
    assert await store.candle_count("binance", "BTC/USDT", "1m") == 10
    await store.write_candles([candle(9, close="43000.5")])
    assert await store.candle_count("binance", "BTC/USDT", "1m") == 10
    latest = await store.latest_candle("binance", "BTC/USDT", "1m")
    assert latest is not None and latest.close == Decimal("43000.5")


async def test_ranges_last_n_latest_and_age(store: InfluxPriceStore) -> None:
    await store.write_candles([candle(i) for i in range(10)])
    between = await store.candles_between("binance", "BTC/USDT", "1m", T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    assert [c.open_time for c in between] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert await store.candles_between("binance", "BTC/USDT", "1m", T0 + 5 * MINUTE, T0 + 5 * MINUTE) == []
    last = await store.last_candles("binance", "BTC/USDT", "1m", 3)
    assert [c.open_time for c in last] == [T0 + 7 * MINUTE, T0 + 8 * MINUTE, T0 + 9 * MINUTE]
    assert await store.last_candles("binance", "BTC/USDT", "1m", 0) == []
    latest = await store.latest_candle("binance", "BTC/USDT", "1m")
    assert latest is not None and latest.open_time == T0 + 9 * MINUTE
    now = T0 + 10 * MINUTE + timedelta(seconds=42)  # the last candle closed at T0 + 10 min
    assert await store.latest_candle_age("binance", "BTC/USDT", "1m", now=now) == timedelta(seconds=42)
    assert await store.latest_candle("binance", "ETH/USDT", "1m") is None
    assert await store.latest_candle_age("binance", "ETH/USDT", "1m", now=now) is None
    assert await store.candle_count("binance", "ETH/USDT", "1m") == 0


async def test_range_reads_page_past_5000_points(store: InfluxPriceStore) -> None:
    many = [candle(i) for i in range(5003)]  # two write batches, two read pages
    attempts = store.request_attempts
    await store.write_candles(many)
    assert store.request_attempts - attempts == 2
    back = await store.candles_between("binance", "BTC/USDT", "1m", T0, T0 + 6000 * MINUTE)
    assert [c.open_time for c in back] == [c.open_time for c in many]


async def test_odd_tag_values_stay_separate(store: InfluxPriceStore) -> None:
    # Candle validators never produce these, so bypass them: the store must still escape them.
    # (symbol, close, the symbol as an InfluxQL literal written by hand, independent of the store)
    odd = [
        ("BTC/USDT", "1", "'BTC/USDT'"),
        ("BTC/USDT X", "2", "'BTC/USDT X'"),
        ("BTC/USDT,X=Y", "3", "'BTC/USDT,X=Y'"),
        ("BTC 'Q\"", "4", "'BTC \\'Q\"'"),
    ]
    exchange = "odd ex,=\"'"
    points = [
        candle(0).model_copy(update={"symbol": symbol, "exchange": exchange, "close": Decimal(close)})
        for symbol, close, _ in odd
    ]
    await store.write_candles(points)
    for symbol, close, literal in odd:
        assert await store.candle_count(exchange, symbol, "1m") == 1
        rows = await store.query(f'SELECT "close", "symbol", "exchange" FROM "candle" WHERE "symbol" = {literal}')
        assert [(r["symbol"], r["exchange"], r["close"]) for r in rows] == [(symbol, exchange, float(close))]
    tag_values = await store.query('SHOW TAG VALUES FROM "candle" WITH KEY = "symbol"')
    assert sorted(r["value"] for r in tag_values) == sorted(symbol for symbol, _, _ in odd)
    # A valid series next to a look-alike: reads see only their own series.
    await store.write_candles([candle(1, close="43444.0625"), candle(1, close="43445", symbol="BTC/USDT:USDT")])
    assert await store.candle_count("binance", "BTC/USDT", "1m") == 1
    spot = await store.latest_candle("binance", "BTC/USDT", "1m")
    assert spot is not None and spot.close == Decimal("43444.0625")


async def test_indicator_snapshots_round_trip_with_nulls(store: InfluxPriceStore) -> None:
    snapshots = []
    for i, indicators in enumerate(
        [Indicators(), Indicators(rsi=Decimal("27.5")), Indicators(rsi=Decimal("31.25"), macd=Decimal("-12.5"), obv=Decimal("1e3"))]
    ):
        parent = candle(i)
        snapshots.append(IndicatorSnapshot.caused_by(
            parent, source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="1m",
            candle_time=parent.open_time, close=parent.close, indicators=indicators,
        ))
    await store.write_indicators(snapshots)
    back = await store.indicators_between("binance", "BTC/USDT", "1m", T0, T0 + 10 * MINUTE)
    assert [s.indicators for s in back] == [s.indicators for s in snapshots]
    assert [(s.candle_time, s.close) for s in back] == [(s.candle_time, s.close) for s in snapshots]
    assert [s.message_id for s in back] == [s.message_id for s in snapshots]
    assert back[0].indicators.rsi is None and back[0].source == "influxdb"
    latest = await store.latest_indicators("binance", "BTC/USDT", "1m")
    assert latest is not None
    assert latest.model_dump(exclude={"produced_at"}) == back[-1].model_dump(exclude={"produced_at"})
    assert await store.latest_indicators("binance", "ETH/USDT", "1m") is None


async def test_type_conflict_is_a_store_error_without_retry(store: InfluxPriceStore) -> None:
    await store.write_lines([line("probe", {"t": "a"}, {"v": "text"}, 1000)])
    attempts = store.request_attempts
    with pytest.raises(PriceStoreError) as info:
        await store.write_lines([line("probe", {"t": "a"}, {"v": 1.5}, 2000)])
    assert type(info.value) is PriceStoreError and info.value.status == 400
    assert "field type conflict" in str(info.value)
    assert store.request_attempts - attempts == 1
    assert store.healthy and store.last_error is not None


async def test_query_errors_are_store_errors(influxdb_server_url: str) -> None:
    async with InfluxPriceStore(influxdb_server_url, "tb_no_such_database", max_attempts=2, backoff=0.01) as store:
        with pytest.raises(PriceStoreError, match="database not found"):  # error inside a 200 answer
            await store.latest_candle("binance", "BTC/USDT", "1m")
        with pytest.raises(PriceStoreError, match="404|database not found"):
            await store.write_candles([candle(0)])
        with pytest.raises(PriceStoreError, match="parsing query"):
            await store.query("SELEC nothing")
        assert await store.ping()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_influx_raises_unavailable_after_max_attempts() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    async with InfluxPriceStore(url, "db", token=TOKEN, max_attempts=3, backoff=0.01) as store:
        assert not await store.ping()
        with capture_logs() as logs, pytest.raises(PriceStoreUnavailable) as info:
            await store.write_candles([candle(0)])
        assert store.request_attempts == 3 and info.value.attempts == 3
        assert not store.healthy and store.last_error and "3 attempts" in store.last_error
        assert [entry["event"] for entry in logs] == ["influx_retry", "influx_retry", "influx_unavailable"]
        for text in (str(info.value), repr(store), repr(logs), store.last_error):
            assert TOKEN not in text


class FakeInflux:
    """A local HTTP server answering from a script of status codes, then 204; records requests."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[web.Request] = []
        self.authorizations: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        self.authorizations.append(request.headers.get("Authorization"))
        await request.read()
        status = self.statuses.pop(0) if self.statuses else 204
        if status == 204:
            return web.Response(status=204)
        return web.json_response({"error": f"scripted {status}"}, status=status)


@pytest.fixture
async def fake_influx() -> AsyncIterator[tuple[str, FakeInflux]]:
    fake = FakeInflux([])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", fake
    await runner.cleanup()


async def test_503_is_retried_then_succeeds_and_health_recovers(fake_influx: tuple[str, FakeInflux]) -> None:
    url, fake = fake_influx
    async with InfluxPriceStore(url, "bucket", token=TOKEN, max_attempts=3, backoff=0.01) as store:
        fake.statuses[:] = [503, 503, 503]
        with pytest.raises(PriceStoreUnavailable, match="HTTP 503: scripted 503"):
            await store.write_candles([candle(0)])
        assert not store.healthy and len(fake.requests) == 3
        fake.statuses[:] = [503, 429]
        await store.write_candles([candle(0)])
        assert len(fake.requests) == 6
        assert store.healthy and store.last_error is None
        write = fake.requests[-1]
        assert write.path == "/write" and dict(write.query) == {"db": "bucket", "precision": "ms"}
        assert set(fake.authorizations) == {f"Token {TOKEN}"}


async def test_ensure_database_tolerates_managed_buckets(fake_influx: tuple[str, FakeInflux]) -> None:
    url, fake = fake_influx
    async with InfluxPriceStore(url, "bucket", token=TOKEN, max_attempts=2, backoff=0.01) as store:
        for status in (401, 403, 404):
            fake.statuses[:] = [status]
            with capture_logs() as logs:
                await store.ensure_database()
            assert logs[-1]["event"] == "influx_database_managed_elsewhere" and logs[-1]["status"] == status
            assert store.healthy and store.last_error is None
        fake.statuses[:] = [400]
        with pytest.raises(PriceStoreError, match="HTTP 400"):
            await store.ensure_database()
        assert fake.requests[-1].method == "POST" and fake.requests[-1].path == "/query"

"""The technical analysis agent on the real RabbitMQ and InfluxDB: indicator values on the bus
equal TA-Lib called directly on the same real BTC candles (warm-up nulls included), a restart
mid-stream continues with the uninterrupted values, redeliveries repeat the same snapshot, and
an unreachable InfluxDB degrades health and holds the candle back until it returns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from agents.data_collection.replay import clean, load_package_btc_15m
from agents.technical_analysis import TechnicalAnalysisAgent, TechnicalAnalysisSettings
from agents.technical_analysis.indicators import COLUMNS
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from protocol import Candle, HealthState, IndicatorSnapshot, decode
from tests.support.bus import cleanup, drain, queue_depth, wait_until
from tests.support.tcp_proxy import TcpProxy
from tests.unit.technical_analysis.reference import Series, series_of
from tests.unit.technical_analysis.reference import same, windowed_reference

pytestmark = pytest.mark.integration

SERIES = ("binance", "BTC/USDT", "15m")
# A stretch of the real data that crosses several UTC midnights and holds zero-volume bars.
OFFSET = 1500


@pytest.fixture(scope="module")
def btc() -> Series:
    candles = clean(load_package_btc_15m(), exchange="binance", symbol="BTC/USDT", timeframe="15m").candles
    return series_of(candles[OFFSET : OFFSET + 301])


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


def settings_for(rabbitmq_url: str, influx_url: str, database: str, topology: Topology, **extra: str) -> TechnicalAnalysisSettings:
    values = {
        "RABBITMQ_URL": rabbitmq_url, "INFLUXDB_URL": influx_url, "INFLUXDB_DATABASE": database,
        "BUS_EXCHANGE": topology.exchange, "HEARTBEAT_INTERVAL": "0.5", **extra,
    }
    return TechnicalAnalysisSettings(_env_file=None, **values)  # type: ignore[arg-type]


class Running:
    """The agent running in this process, as `tradebus agent technical-analysis` would run it."""

    def __init__(self, settings: TechnicalAnalysisSettings, topology: Topology) -> None:
        self.agent = TechnicalAnalysisAgent(settings, topology)
        self.task = asyncio.create_task(self.agent.run(install_signal_handlers=False))

    async def stop(self) -> None:
        self.agent.request_stop()
        await asyncio.wait_for(self.task, 30)
        assert self.agent.exit_code == 0


async def publish(rabbitmq_url: str, topology: Topology, candles: list[Candle]) -> None:
    async with Bus(rabbitmq_url, topology, connection_name="ta-test") as bus:
        for candle in candles:
            await bus.publish(candle)


def prefix(series: Series, n: int) -> Series:
    return series_of(series.candles[:n])


def snapshots_queue(topology: Topology) -> str:
    return f"{topology.exchange}.strategy.indicators"


async def take(rabbitmq_url: str, topology: Topology, n: int) -> list[IndicatorSnapshot]:
    messages = await drain(rabbitmq_url, snapshots_queue(topology), expect=n, timeout=60)
    assert len(messages) == n
    return [decode(m.body, IndicatorSnapshot) for m in messages]


def assert_equal_to_reference(snapshot: IndicatorSnapshot, expected: dict, i: int) -> None:  # type: ignore[type-arg]
    wrong = {
        name: (getattr(snapshot.indicators, name), expected[name][i])
        for name in COLUMNS
        if not same(getattr(snapshot.indicators, name), expected[name][i])
    }
    assert not wrong, f"candle {i}: {wrong}"


async def test_published_indicators_equal_talib_called_directly_on_real_candles(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, btc: Series
) -> None:
    n = 300
    series = prefix(btc, n)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.ensure_database()
        await store.write_candles(series.candles)
    await publish(rabbitmq_url, topology, series.candles)
    running = Running(settings_for(rabbitmq_url, *influxdb_database, topology), topology)
    try:
        received = await take(rabbitmq_url, topology, n)
    finally:
        await running.stop()

    # The default window (500) holds every one of these 300 candles, so the window ending at
    # candle i is candles 0..i: TA-Lib over that prefix.
    expected = windowed_reference(series, running.agent.params)
    assert [s.candle_time for s in received] == [c.open_time for c in series.candles]
    for i, (snapshot, candle) in enumerate(zip(received, series.candles, strict=True)):
        assert snapshot.causation_id == candle.message_id and snapshot.close == candle.close
        assert (snapshot.exchange, snapshot.symbol, snapshot.timeframe) == SERIES
        assert_equal_to_reference(snapshot, expected, i)
    # Warm-up nulls really are on the bus: the first snapshot has no RSI, the 50th an SMA 50.
    assert received[0].indicators.rsi is None and received[48].indicators.sma_slow is None
    assert received[49].indicators.sma_slow is not None
    assert running.agent.heartbeat().detail["snapshots_published"] == str(n)

    # Written to InfluxDB before publishing: the store reads back the same messages.
    async with InfluxPriceStore(*influxdb_database) as store:
        stored = await store.indicators_between(*SERIES, series.candles[0].open_time, series.candles[-1].close_time)
    assert [s.message_id for s in stored] == [s.message_id for s in received]
    assert [s.indicators for s in stored] == [s.indicators for s in received]


async def test_restarted_mid_stream_the_next_snapshots_equal_the_uninterrupted_run(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, btc: Series
) -> None:
    series = btc
    stream, extra = series.candles[:300], series.candles[300]
    # A small window, so the restarted agent's window must come from InfluxDB history and the
    # window semantics (the last 120 candles up to t) decide every value after candle 120.
    settings = settings_for(rabbitmq_url, *influxdb_database, topology, TA_WINDOW="120")
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.ensure_database()
        await store.write_candles(series.candles)  # data collection stores before it publishes
    await publish(rabbitmq_url, topology, stream)

    first = Running(settings, topology)
    assert await wait_until(lambda: first.agent.snapshots_published >= 100, timeout=60)
    await first.stop()
    stopped_after = first.agent.snapshots_published
    assert 100 <= stopped_after < 300, "the restart must happen mid-stream"

    second = Running(settings, topology)
    try:
        received = await take(rabbitmq_url, topology, 300)
        # Redeliveries: candle 290 again (held: the identical snapshot again), candle 5 again
        # (long gone from the window: skipped with a reason), then a new candle.
        await publish(rabbitmq_url, topology, [stream[290], stream[5], extra])
        more = await take(rabbitmq_url, topology, 2)
        assert await wait_until(lambda: second.agent.skipped == 1, timeout=10)
        assert second.agent.duplicates == 1
        assert await queue_depth(rabbitmq_url, snapshots_queue(topology)) == 0
    finally:
        await second.stop()

    expected = windowed_reference(series, settings.indicator_params())
    assert [s.candle_time for s in received] == [c.open_time for c in stream]  # none lost, none doubled
    assert first.agent.snapshots_published + second.agent.snapshots_published == 302
    for i, snapshot in enumerate(received):
        assert_equal_to_reference(snapshot, expected, i)
    assert received[stopped_after].indicators.rsi is not None  # the restart point, fully warmed

    again, new = more
    assert again.model_dump(exclude={"produced_at"}) == received[290].model_dump(exclude={"produced_at"})
    assert new.candle_time == extra.open_time
    assert_equal_to_reference(new, expected, 300)


async def test_unreachable_influxdb_degrades_health_and_holds_the_snapshot_back(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, btc: Series
) -> None:
    series = btc
    url, database = influxdb_database
    target = urlsplit(url)
    async with InfluxPriceStore(url, database) as store:
        await store.write_candles(series.candles[:11])
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 8086) as proxy:
        running = Running(
            settings_for(rabbitmq_url, proxy.url, database, topology, BUS_MAX_ATTEMPTS="20"), topology
        )
        try:
            await publish(rabbitmq_url, topology, series.candles[:10])
            first = await take(rabbitmq_url, topology, 10)
            proxy.set_up(False)
            await publish(rabbitmq_url, topology, [series.candles[10]])
            assert await wait_until(lambda: running.agent.health_problems(), timeout=30)
            assert "influxdb unreachable" in running.agent.health_problems()[0]
            assert running.agent.health is HealthState.DEGRADED
            assert await queue_depth(rabbitmq_url, snapshots_queue(topology)) == 0  # stored first
            proxy.set_up(True)
            (late,) = await take(rabbitmq_url, topology, 1)
            assert running.agent.health_problems() == []
        finally:
            await running.stop()
    expected = windowed_reference(prefix(series, 11), running.agent.params)
    assert late.candle_time == series.candles[10].open_time
    assert_equal_to_reference(late, expected, 10)
    assert_equal_to_reference(first[9], expected, 9)


async def test_a_series_taken_back_after_another_instance_handled_it_is_rebuilt_not_appended(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, btc: Series
) -> None:
    """Partitions (decision 0025): an instance that held a series, lost its partition to another
    instance and got it back has a stale window; the next candle rebuilds it from InfluxDB, so
    its snapshot equals the uninterrupted run's instead of being computed across the hole."""
    settings = settings_for(rabbitmq_url, *influxdb_database, topology, TA_WINDOW="120")
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.ensure_database()
        await store.write_candles(btc.candles)  # data collection stores before it publishes
    before, elsewhere, after = btc.candles[:150], btc.candles[150:200], btc.candles[200:210]
    assert elsewhere  # handled by the other instance: stored, never delivered here
    running = Running(settings, topology)
    try:
        await publish(rabbitmq_url, topology, before)
        await take(rabbitmq_url, topology, len(before))
        await publish(rabbitmq_url, topology, after)
        received = await take(rabbitmq_url, topology, len(after))
    finally:
        await running.stop()

    expected = windowed_reference(btc, settings.indicator_params())
    for offset, snapshot in enumerate(received):
        assert snapshot.candle_time == after[offset].open_time
        assert_equal_to_reference(snapshot, expected, 200 + offset)

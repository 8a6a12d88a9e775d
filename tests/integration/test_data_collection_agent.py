"""The data collection agent as a process on the real broker and influxd, and its store-then-
publish rule with InfluxDB taken down."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agents.data_collection.ingest import Ingestor
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from protocol import Candle, Heartbeat, decode
from tests.support.bus import cleanup, drain, make_candle, queue_depth, wait_until
from tests.support.processes import spawn
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    import uuid

    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


def candle_queue(topology: Topology) -> str:
    return f"{topology.exchange}.technical_analysis.candles"


async def run_agent(env: dict[str, str], timeout: float = 120) -> str:
    process = spawn("agents.data_collection", env=env)
    try:
        code = await asyncio.to_thread(process.wait, timeout)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr[-4000:]
    return stderr


def agent_env(rabbitmq_url: str, influx: tuple[str, str], topology: Topology, **extra: str) -> dict[str, str]:
    return {
        "RABBITMQ_URL": rabbitmq_url,
        "INFLUXDB_URL": influx[0],
        "INFLUXDB_DATABASE": influx[1],
        "BUS_EXCHANGE": topology.exchange,
        "DATA_SOURCE": "replay",
        "SYMBOLS": "BTC/USDT",
        "TIMEFRAME": "15m",
        "REPLAY_EXIT_ON_END": "true",
        "HEARTBEAT_INTERVAL": "0.5",
        "INGEST_BATCH_SIZE": "64",
        **extra,
    }


async def test_replaying_n_candles_stores_and_publishes_n_with_the_same_ids_twice(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    n = 300
    env = agent_env(rabbitmq_url, influxdb_database, topology, REPLAY_LIMIT=str(n), REPLAY_OFFSET="1000")
    await run_agent(env)

    async with InfluxPriceStore(*influxdb_database) as store:
        assert await store.candle_count("binance", "BTC/USDT", "15m") == n
        stored = await store.last_candles("binance", "BTC/USDT", "15m", n)
    first = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=n)]
    assert len(first) == n
    assert [c.open_time for c in first] == [c.open_time for c in stored]
    assert [c.message_id for c in first] == [c.message_id for c in stored]
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in first] == [
        (c.open, c.high, c.low, c.close, c.volume) for c in stored
    ]
    assert all(b.open_time < a.open_time for b, a in zip(first, first[1:]))

    beats = [decode(m.body, Heartbeat) for m in await drain(rabbitmq_url, f"{topology.exchange}.monitor.heartbeats", expect=1000, timeout=2)]
    assert any(b.detail.get("done") == "true" and b.detail.get("candles_published") == str(n) for b in beats)

    # Deterministic: a second replay publishes the same messages with the same ids; the store
    # still holds one point per candle. (Without REPLAY_RESUME=false the second run would
    # resume after the candles already stored: see the resume test below.)
    await run_agent({**env, "REPLAY_RESUME": "false"})
    second = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=n)]
    assert [c.message_id for c in second] == [c.message_id for c in first]
    # Same messages: everything but the production time is identical.
    assert [c.model_dump(exclude={"produced_at"}) for c in second] == [c.model_dump(exclude={"produced_at"}) for c in first]
    async with InfluxPriceStore(*influxdb_database) as store:
        assert await store.candle_count("binance", "BTC/USDT", "15m") == n


async def test_a_restarted_replay_resumes_one_batch_before_the_newest_stored_candle(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    from agents.data_collection.replay import load_and_clean

    n, stored, batch, offset = 60, 25, 4, 1000
    candles = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").candles[offset : offset + n]
    # What an instance killed mid-replay left behind: the first candles stored (and published).
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_candles(candles[:stored])
    env = agent_env(rabbitmq_url, influxdb_database, topology, REPLAY_LIMIT=str(n), REPLAY_OFFSET=str(offset),
                    INGEST_BATCH_SIZE=str(batch))
    await run_agent(env)

    published = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=n)]
    # From one batch before the newest stored candle (that batch may have been stored and not
    # yet published when the first instance died) to the end: nothing skipped, no second slice.
    assert [c.message_id for c in published] == [c.message_id for c in candles[stored - 1 - batch :]]
    async with InfluxPriceStore(*influxdb_database) as store:
        assert await store.candle_count("binance", "BTC/USDT", "15m") == n


async def test_several_symbols_from_files(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, tmp_path: Path
) -> None:
    files = {}
    for symbol, scale in (("BTC/USDT", 1), ("ETH/USDT", 0.07)):
        path = tmp_path / f"{symbol.replace('/', '_')}.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            for i in range(40):
                c = make_candle(i)
                writer.writerow([c.open_time.isoformat(), *(round(float(v) * scale, 2) for v in (c.open, c.high, c.low, c.close)), c.volume])
        files[symbol] = path
    env = agent_env(
        rabbitmq_url, influxdb_database, topology,
        SYMBOLS="BTC/USDT,ETH/USDT",
        REPLAY_FILE=";".join(f"{s}={p}" for s, p in files.items()),
    )
    await run_agent(env)
    received = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=80)]
    assert sorted({c.symbol for c in received}) == ["BTC/USDT", "ETH/USDT"]
    assert len(received) == 80
    # Interleaved by time, as live data would arrive.
    assert [c.open_time for c in received] == sorted(c.open_time for c in received)
    async with InfluxPriceStore(*influxdb_database) as store:
        assert await store.candle_count("binance", "ETH/USDT", "15m") == 40


async def test_two_shipped_series_replay_interleaved_by_time_within_the_first_symbols_window(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    from agents.data_collection.pacing import merge_by_time
    from agents.data_collection.replay import load_and_clean

    offset, n = 100, 30  # BTC/USDT 2020-04-10..05-10; NFLX/USDT its trading days in that span
    env = agent_env(rabbitmq_url, influxdb_database, topology, SYMBOLS="BTC/USDT,NFLX/USDT", TIMEFRAME="1d",
                    REPLAY_OFFSET=str(offset), REPLAY_LIMIT=str(n), INGEST_BATCH_SIZE="7")
    await run_agent(env)

    btc = load_and_clean("package:BTC-USD-1-DAY", exchange="binance", symbol="BTC/USDT", timeframe="1d").candles[offset : offset + n]
    nflx = [c for c in load_and_clean("package:NFLX", exchange="binance", symbol="NFLX/USDT", timeframe="1d").candles
            if btc[0].open_time <= c.open_time <= btc[-1].open_time]
    expected = merge_by_time({"BTC/USDT": btc, "NFLX/USDT": nflx})
    received = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=len(expected))]
    assert 20 <= len(nflx) <= 22
    # Published in time order, a BTC/USDT candle before the NFLX/USDT one of the same day.
    assert [(c.symbol, c.message_id) for c in received] == [(c.symbol, c.message_id) for c in expected]
    assert [c.symbol for c in received[:2]] == ["BTC/USDT", "BTC/USDT"]  # 10 April 2020 was Good Friday
    async with InfluxPriceStore(*influxdb_database) as store:
        assert await store.candle_count("binance", "BTC/USDT", "1d") == n
        assert await store.candle_count("binance", "NFLX/USDT", "1d") == len(nflx)
    beats = [decode(m.body, Heartbeat) for m in await drain(rabbitmq_url, f"{topology.exchange}.monitor.heartbeats", expect=1000, timeout=2)]
    final = [b.detail for b in beats if b.detail.get("done") == "true"]
    assert final and final[-1]["published.BTC/USDT"] == str(n) and final[-1]["published.NFLX/USDT"] == str(len(nflx))
    assert final[-1]["progress"] == f"{len(expected)}/{len(expected)}"


async def test_no_candle_is_published_before_it_is_stored(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    url, database = influxdb_database
    target = urlsplit(url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 8086) as proxy:
        proxy.set_up(False)
        store = InfluxPriceStore(proxy.url, database, max_attempts=2, backoff=0.01)
        async with Bus(rabbitmq_url, topology, connection_name="ingest-test") as bus:
            stopping = asyncio.Event()
            retries = 0

            async def sleep(seconds: float) -> bool:
                # Called after each failed write, before the next one: counts the retries.
                nonlocal retries
                retries += 1
                await asyncio.sleep(min(seconds, 0.2))
                return stopping.is_set()

            ingestor = Ingestor(store, bus, sleep)
            candles = [make_candle(i) for i in range(5)]
            task = asyncio.create_task(ingestor.ingest(candles))
            # The sentinel: a third failed write. The ingestor is sequential, so a publish that
            # did not wait for the store (after the first failure, or instead of retrying)
            # would have happened by now.
            assert await wait_until(lambda: retries >= 3, timeout=10), f"{retries} retries, then {task}"
            assert ingestor.degraded_reason is not None and not task.done()
            assert await queue_depth(rabbitmq_url, candle_queue(topology)) == 0  # nothing published
            assert not store.healthy

            proxy.set_up(True)
            await asyncio.wait_for(task, timeout=20)
            assert ingestor.degraded_reason is None and store.healthy
            assert await queue_depth(rabbitmq_url, candle_queue(topology)) == 5
        await store.close()
    async with InfluxPriceStore(url, database) as direct:
        assert await direct.candle_count("binance", "BTC/USDT", "15m") == 5


async def test_exchange_mode_backfills_from_a_binance_speaking_server(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    import signal
    from datetime import UTC, datetime, timedelta

    from tests.support.fake_binance import FakeBinance, make_klines

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    n = 150
    async with FakeBinance({"BTCUSDT": make_klines(now - timedelta(minutes=n), n, "1m")}) as fake:
        env = agent_env(
            rabbitmq_url, influxdb_database, topology,
            DATA_SOURCE="exchange", TIMEFRAME="1m", EXCHANGE_API_URL=fake.url, BACKFILL_DAYS="1",
        )
        process = spawn("agents.data_collection", env=env)
        try:
            async with InfluxPriceStore(*influxdb_database) as store:

                async def stored() -> bool:
                    return await store.candle_count("binance", "BTC/USDT", "1m") >= n

                assert await wait_until(stored, timeout=60), (process.poll(), process.stderr.read() if process.poll() is not None and process.stderr else "")
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 30)
        finally:
            if process.poll() is None:
                process.kill()
        assert code == 0, process.stderr.read() if process.stderr else ""
        assert len(fake.requests_to()) >= 1
    received = [decode(m.body, Candle) for m in await drain(rabbitmq_url, candle_queue(topology), expect=n + 5, timeout=3)]
    assert len(received) == n
    assert [c.message_id for c in received] == [c.message_id for c in sorted(received, key=lambda c: c.open_time)]

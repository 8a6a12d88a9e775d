"""`tradebus run` rides out its own infrastructure (issue 14), tested without disturbing the
shared services: the run (or its watcher) talks to RabbitMQ, Postgres and InfluxDB through
local TCP proxies, and a test "restarts" a service by cutting its proxy — closing the proxy's
connections is what a broker restart looks like to a client — then restoring it.

Every wait here waits for a sentinel (a probe result, a line of the run's output), bounded by a
hang guard; nothing sleeps to prove that something did not happen.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest

from agents.run.outages import Outages
from agents.run.progress import Progress
from agents.run.services import INFLUXDB, POSTGRES, RABBITMQ, ServiceWatch, influx_probe, postgres_probe
from agents.run.watch import BusWatch
from infra.bus import system_topology
from infra.settings import Settings
from protocol import encode, topics
from tests.support.bus import cleanup
from tests.support.tcp_proxy import TcpProxy
from tests.unit.runtime.test_supervisor_run import beat

pytestmark = pytest.mark.integration

GUARD = 60.0  # seconds: hang guards, not speed assertions


def _via(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (credentials and path kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=(f"{credentials}@" if credentials else "") + f"127.0.0.1:{proxy.port}").geturl()


@asynccontextmanager
async def _proxies(*urls: str) -> AsyncIterator[list[TcpProxy]]:
    async with AsyncExitStack() as stack:
        proxies = []
        for url in urls:
            parts = urlsplit(url)
            proxies.append(await stack.enter_async_context(TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0)))
        yield proxies


async def _until(watch: ServiceWatch, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Probe rounds until ``condition()`` holds (each round is bounded by the probe timeout)."""
    async def rounds() -> None:
        while True:
            await watch.probe_once()
            if condition():
                return

    try:
        await asyncio.wait_for(rounds(), GUARD)
    except TimeoutError:
        pytest.fail(f"still not {what} after {GUARD:.0f}s: {watch.outages.describe()}")


async def test_the_watcher_shows_each_outage_and_its_end_and_keeps_consuming(
    rabbitmq_url: str, postgres_url: str, influxdb_server_url: str
) -> None:
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    lines: list[str] = []
    outages = Outages(on_change=lines.append)
    async with _proxies(rabbitmq_url, postgres_url, influxdb_server_url) as (broker, database, influx):
        settings = Settings(_env_file=None, RABBITMQ_URL=_via(rabbitmq_url, broker), BUS_EXCHANGE=exchange)  # type: ignore[call-arg]
        progress = Progress()
        watch = BusWatch(settings, progress)
        await watch.start()
        client = httpx.AsyncClient(base_url=_via(influxdb_server_url, influx), timeout=2)
        services = ServiceWatch(
            {RABBITMQ: watch.probe, POSTGRES: postgres_probe(_via(postgres_url, database), 2), INFLUXDB: influx_probe(client)},
            outages, timeout=2,
        )
        try:
            await services.probe_once()
            assert outages.describe() == [], outages.describe()
            for name, proxy in ((POSTGRES, database), (INFLUXDB, influx), (RABBITMQ, broker)):
                proxy.set_up(False)
                await _until(services, lambda n=name: n in outages.current, f"{name} down")
                outage = outages.current[name]
                assert outage.last_error and outage.since is not None
                assert list(outages.current) == [name]  # only the service that is down
                if name == RABBITMQ:  # the completion check's depth read fails (bounded), it does not hang
                    with pytest.raises((ConnectionError, RuntimeError, TimeoutError, aio_pika.exceptions.AMQPError)):
                        await asyncio.wait_for(watch.depths([f"{exchange}.monitor.heartbeats"]), 5)
                proxy.set_up(True)
                await _until(services, lambda n=name: n not in outages.current, f"{name} back")
                assert any(line.startswith(f"{name} back after") for line in lines), lines
            assert outages.total == 3
            # the monitor consumer came back with the connection: a heartbeat published now is seen
            connection = await aio_pika.connect(rabbitmq_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                bus = await channel.get_exchange(exchange)
                await bus.publish(aio_pika.Message(encode(beat("strategy", 3))), routing_key=topics.heartbeat("strategy"))

            async def seen() -> None:
                while "strategy" not in progress.agents:
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(seen(), GUARD)
        finally:
            await services.close()
            await watch.close()
            await client.aclose()
            await cleanup(rabbitmq_url, system_topology(exchange))


async def _lines(stream: asyncio.StreamReader, out: list[str]) -> None:
    while line := await stream.readline():
        out.append(line.decode().rstrip())


async def _wait_line(out: list[str], pattern: str, process: asyncio.subprocess.Process) -> str:
    regex = re.compile(pattern)

    async def find() -> str:
        while True:
            for line in out:
                if regex.search(line):
                    return line
            if process.returncode is not None:
                raise AssertionError(f"run ended before {pattern!r}:\n" + "\n".join(out))
            await asyncio.sleep(0.1)

    try:
        return await asyncio.wait_for(find(), GUARD)
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} within {GUARD:.0f}s:\n" + "\n".join(out)) from None


async def test_a_run_rides_out_a_broker_postgres_and_influxdb_outage(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    """A short replay through proxies; mid-replay every service goes away at once and comes
    back: the run shows each outage, keeps going, and ends normally with the whole replay."""
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    async with _proxies(rabbitmq_url, postgres_server_url, influxdb_server_url) as proxies:
        broker, database, influx = proxies
        env = {
            **os.environ,
            "RABBITMQ_URL": _via(rabbitmq_url, broker),
            "DATABASE_URL": re.sub(r"/[^/]*$", f"/{base}", _via(postgres_server_url, database)),
            "INFLUXDB_URL": _via(influxdb_server_url, influx),
            "INFLUXDB_DATABASE": base,
            "BUS_EXCHANGE": base,
        }
        env.pop("INFLUXDB_TOKEN", None)
        tradebus = Path(sys.executable).with_name("tradebus")
        # 30 candles of 15 minutes at 900x real time: a replay of about 30 s to cut into
        process = await asyncio.create_subprocess_exec(
            str(tradebus), "run", "--agents", "data-collection", "--limit", "30", "--speed", "900", "--plain",
            "--no-check", "--timeout", "240", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out: list[str] = []
        reader = asyncio.create_task(_lines(process.stdout, out))  # type: ignore[arg-type]
        try:
            await _wait_line(out, r"candles [1-9]\d* published", process)
            for proxy in proxies:
                proxy.set_up(False)
            for name in (RABBITMQ, POSTGRES, INFLUXDB):
                await _wait_line(out, rf"\[run\] {name} unreachable", process)
            for proxy in proxies:
                proxy.set_up(True)
            for name in (RABBITMQ, POSTGRES, INFLUXDB):
                await _wait_line(out, rf"\[run\] {name} back after", process)
            code = await asyncio.wait_for(process.wait(), 240)
            await reader
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = "\n".join(out)
    assert code == 0, text
    assert "30 published (30/30), 30 stored" in text and "replay fully processed" in text
    assert "service outages ridden out: 3" in text
    run_id = re.search(r"run (run_\d{8}_\d{6}_[0-9a-f]{4})", text).group(1)  # type: ignore[union-attr]
    await _drop_run_stores(postgres_server_url, influxdb_server_url, f"{base}_{run_id}")


async def _drop_run_stores(postgres_server_url: str, influxdb_server_url: str, store: str) -> None:
    import asyncpg

    dsn = re.sub(r"/[^/]*$", "/postgres", postgres_server_url).replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{store}" WITH (FORCE)')
    finally:
        await admin.close()
    async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
        await client.post("/query", data={"q": f'DROP DATABASE "{store}"'})

"""`tradebus run` rides out its own infrastructure (issue 14), tested without disturbing the
shared services: the run (or its watcher) talks to RabbitMQ, Postgres and InfluxDB through
local TCP proxies, and a test "restarts" a service by cutting its proxy — closing the proxy's
connections is what a broker restart looks like to a client — then restoring it.

Every wait here waits for a sentinel (a probe result, a line of the run's output), bounded by a
hang guard; nothing sleeps to prove that something did not happen.
"""

from __future__ import annotations

import asyncio
import io
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
from rich.console import Console

from agents.run.command import RunOptions, RunSession
from agents.run.outages import Outages
from agents.run.progress import Progress
from agents.run.services import INFLUXDB, POSTGRES, RABBITMQ, ServiceWatch, influx_probe, postgres_probe
from agents.run.watch import BusWatch
from infra.bus import system_topology
from infra.settings import Settings
from protocol import encode, topics
from tests.support.bus import cleanup
from tests.support.runs import GUARD, RUN_ID, RunOutput, drop_stores, run_env
from tests.support.tcp_proxy import TcpProxy
from tests.unit.runtime.test_supervisor_run import beat

pytestmark = pytest.mark.integration


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
                if name == RABBITMQ:
                    # The run's completion check reads depths here; this is where `tradebus run`
                    # crashed ("Connection was not opened"). Now: bounded, recorded, not finished.
                    session = RunSession(RunOptions(probe_timeout=2), Console(file=io.StringIO()))
                    queue = f"{exchange}.monitor.heartbeats"
                    depths = await asyncio.wait_for(session.queue_depths(watch, [queue]), GUARD)
                    assert depths == {"(broker unreachable)": 1} and RABBITMQ in session.outages.current
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


async def test_a_run_rides_out_a_broker_postgres_and_influxdb_outage(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    """A short replay through proxies; mid-replay every service goes away at once and comes
    back: the run shows each outage, keeps going, and ends normally with the whole replay."""
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    async with _proxies(rabbitmq_url, postgres_server_url, influxdb_server_url) as proxies:
        broker, database, influx = proxies
        env = run_env(_via(rabbitmq_url, broker), _via(postgres_server_url, database), _via(influxdb_server_url, influx), base)
        # 30 candles of 15 minutes at 900x real time: a replay of about 30 s to cut into
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("tradebus")), "run", "--agents", "data-collection", "--limit", "30",
            "--speed", "900", "--plain", "--no-check", "--timeout", "240", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        run = RunOutput(process)
        try:
            await run.wait_for(r"candles [1-9]\d* published")
            for proxy in proxies:
                proxy.set_up(False)
            for name in (RABBITMQ, POSTGRES, INFLUXDB):
                await run.wait_for(rf"^\[run\] {name} unreachable: ")
            for proxy in proxies:
                proxy.set_up(True)
            for name in (RABBITMQ, POSTGRES, INFLUXDB):
                await run.wait_for(rf"^\[run\] {name} back after \d+s")
            code = await run.finish(240)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = run.text
    assert code == 0, text
    assert "30 published (30/30), 30 stored" in text and "replay fully processed" in text
    assert "service outages ridden out: 3" in text
    store = f"{base}_{re.search(RUN_ID, text).group(1)}"  # type: ignore[union-attr]
    await drop_stores(postgres_server_url, influxdb_server_url, [store])

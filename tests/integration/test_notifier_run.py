"""`tradebus run` starts the alert notifier as one more supervised process when a target is
configured: an emergency stop published on the run's bus reaches the webhook; `--no-notify`
leaves it out."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from infra.bus import Bus, system_topology
from protocol import EmergencyStop
from tests.support.alert_server import AlertServer
from tests.support.runs import GUARD, RUN_ID, RunOutput, drop_stores, run_env

pytestmark = pytest.mark.integration

TRADEBUS = str(Path(sys.executable).with_name("tradebus"))


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer().running() as running:
        yield running


@asynccontextmanager
async def run_with_webhook(
    urls: tuple[str, str, str], tmp_path: Path, webhook: str, *extra: str
) -> AsyncIterator[tuple[RunOutput, str]]:
    """`tradebus run` of 5 candles (data collection only, following; the console left out so the
    agent counts below are the notifier's doing) with NOTIFIER_WEBHOOK_URLS set; yields its
    output and run id; interrupted and its stores dropped afterwards."""
    rabbitmq_url, postgres_server_url, influxdb_server_url = urls
    base = f"tbnrun_{uuid.uuid4().hex[:8]}"
    env = {**run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base), "NOTIFIER_WEBHOOK_URLS": webhook}
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "run", "--agents", "data-collection", "--limit", "5", "--follow", "--plain", "--no-check",
        "--timeout", "120", "--no-api", *extra, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    run = RunOutput(process)
    stores: list[str] = []
    try:
        run_id = (await run.wait_for(RUN_ID)).group(1)
        stores.append(f"{base}_{run_id}")
        yield run, run_id
    finally:
        process.send_signal(signal.SIGINT)
        await run.finish(GUARD)
        await drop_stores(postgres_server_url, influxdb_server_url, stores)


async def test_the_run_starts_the_notifier_when_a_target_is_set(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path, server: AlertServer
) -> None:
    urls = (rabbitmq_url, postgres_server_url, influxdb_server_url)
    async with run_with_webhook(urls, tmp_path, f"{server.url}/hook") as (run, run_id):
        exchange = (await run.wait_for(r"bus exchange (\S+)")).group(1)
        log = tmp_path / ".tradebus" / "runs" / run_id / "notifier.log"
        async with asyncio.timeout(GUARD):  # the notifier's queue is bound once it says so
            while not (log.exists() and "notifier ready" in log.read_text()):
                await asyncio.sleep(0.2)
        async with Bus(rabbitmq_url, system_topology(exchange), connection_name="test-run-notify") as bus:
            await bus.publish(EmergencyStop(source="operator", active=True, reason="run test", requested_by="test"))
        await server.wait_for(lambda: any(b["kind"] == "emergency_stop" for b in server.delivered("/hook")),
                              "the emergency stop alert from the run's notifier", timeout=GUARD)
    [alert] = [b for b in server.delivered("/hook") if b["kind"] == "emergency_stop"]
    assert alert["deployment"] == exchange and alert["fields"]["reason"] == "run test"
    assert re.search(r"stopping 2 agents", run.text), run.text


async def test_no_notify_leaves_it_out(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path, server: AlertServer
) -> None:
    urls = (rabbitmq_url, postgres_server_url, influxdb_server_url)
    async with run_with_webhook(urls, tmp_path, f"{server.url}/hook", "--no-notify") as (run, run_id):
        # Every process of the run is spawned (its log file opened) before the replay runs.
        await run.wait_for(r"candles 5 published")
    assert re.search(r"stopping 1 agents", run.text), run.text
    assert not (tmp_path / ".tradebus" / "runs" / run_id / "notifier.log").exists()

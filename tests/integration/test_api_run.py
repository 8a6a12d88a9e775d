"""`tradebus run` starts the operator console by default: its address in the header, tokens for a
development run in the run's folder, the console serving the run's own stores and bus; a busy
port ends the run at once with a clear error instead of a console restarted forever."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.runs import GUARD, RUN_ID, RunOutput, end_run, run_env

pytestmark = pytest.mark.integration

TRADEBUS = str(Path(sys.executable).with_name("tradebus"))


async def test_the_run_serves_its_console_on_its_own_stores(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    env = run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base)
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "run", "--agents", "data-collection", "--limit", "5", "--follow", "--plain", "--no-check",
        "--timeout", "300", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    run = RunOutput(process)
    store = None
    try:
        run_id = (await run.wait_for(RUN_ID)).group(1)
        store = f"{base}_{run_id}"
        console = await run.wait_for(r"console (http://127\.0\.0\.1:(\d+)/) .*tokens in (\S+);")
        assert console.group(2) == env["API_PORT"]
        tokens = dict(line.split("=", 1) for line in (tmp_path / console.group(3)).read_text().split())
        assert (tmp_path / console.group(3)).stat().st_mode & 0o077 == 0  # owner only
        assert tokens["API_READ_TOKEN"] not in run.text and tokens["API_OPERATOR_TOKEN"] not in run.text
        headers = {"Authorization": f"Bearer {tokens['API_READ_TOKEN']}"}
        async with httpx.AsyncClient(base_url=console.group(1), timeout=5) as http:
            async with asyncio.timeout(GUARD):  # the console process starts (a Python start-up)
                while True:
                    try:
                        if (await http.get("/api/v1/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
            info = (await http.get("/api/v1/run", headers=headers)).json()
            assert (info["bus_exchange"], info["influxdb_database"]) == (store, store)
            assert info["database_url"].endswith(f"/{store}")
            async with asyncio.timeout(GUARD):  # the replayed candles, as the ledger's price store holds them
                while len((await http.get("/api/v1/candles", params={"symbol": "BTC/USDT"}, headers=headers)).json()["candles"]) < 5:
                    await asyncio.sleep(0.5)
        process.send_signal(signal.SIGINT)
        await run.finish(GUARD)
        assert re.search(r"stopping \d+ agents", run.text), run.text
    finally:
        await end_run(process, postgres_server_url, influxdb_server_url, store)


async def test_a_busy_console_port_ends_the_run_at_once_saying_so(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base), "API_PORT": str(port)}
        process = await asyncio.create_subprocess_exec(
            TRADEBUS, "run", "--agents", "data-collection", "--limit", "5", "--plain", "--no-check", "--timeout", "120",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        run = RunOutput(process)
        try:
            code = await run.finish(GUARD)
        finally:
            found = re.search(RUN_ID, run.text)
            await end_run(process, postgres_server_url, influxdb_server_url, found and f"{base}_{found.group(1)}")
    assert code == 1, run.text
    assert f"port {port} on 127.0.0.1 is already in use" in run.text and "--no-api" in run.text, run.text
    assert "agent restarts" not in run.text  # nothing was started

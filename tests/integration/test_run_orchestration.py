"""The orchestration users run is itself under test (issue 14): `tradebus run` with all five agents
under the supervisor, a crashed agent restarted with the documented backoff defaults and the
restart reported; old run stores pruned to the newest three and nothing else dropped.

Waits are for sentinels (a line of the run's output, the run's exit), bounded by hang guards.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from tests.support.runs import GUARD, RUN_ID, RunOutput, child_pid, drop_stores, run_env, with_db

pytestmark = pytest.mark.integration

TRADEBUS = str(Path(sys.executable).with_name("tradebus"))


async def test_five_agents_supervised_a_killed_agent_restarts_with_the_default_backoff(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    # 120 candles at 3600x real time: a replay of about half a minute, long enough to kill into
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "run", "--limit", "120", "--speed", "3600", "--plain", "--timeout", "400",
        cwd=tmp_path, env=run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    run = RunOutput(process)
    store = None
    try:
        store = f"{base}_{(await run.wait_for(RUN_ID)).group(1)}"
        await run.wait_for(r"candles [1-9]\d* published")  # the replay is under way
        victim = child_pid(process.pid, "agents.strategy")
        assert victim is not None, run.text
        os.kill(victim, signal.SIGKILL)
        await run.wait_for(r"^\[run\] strategy crashed \(killed by SIGKILL\)$")
        # the documented default: the first restart of a crash streak after 1 s
        await run.wait_for(r"^\[run\] strategy: restart 1 in 1\.0s$")
        code = await run.finish(400)
        text = run.text
        assert "120 published (120/120), 120 stored" in text and "replay fully processed" in text, text
        assert "data-collection done (exit 0)" in text and "agent restarts: 1;" in text
        assert code == 0 and "0 FAIL; exit code 0" in text, text  # the reality check passed after the restart
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if store is not None:
            await drop_stores(postgres_server_url, influxdb_server_url, [store])


async def test_old_runs_are_pruned_to_the_newest_three_nothing_else_is_dropped_and_a_failed_check_fails_the_run(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    old_runs = [f"{base}_run_20200101_000000_000{i}" for i in range(1, 5)]  # four earlier runs, oldest first
    decoys = [
        base,  # the configured stores themselves
        f"{base}_other",
        f"{base}_run_2020",  # not a run id
        f"{base}_run_20200101_000000_0001_copy",  # a run id with more after it
        f"{base}x_run_20200101_000000_0001",  # another base name's run
    ]
    admin_dsn = with_db(postgres_server_url, "postgres").replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_dsn)
    connection = await aio_pika.connect(rabbitmq_url)
    store = None
    try:
        for name in old_runs + decoys:
            await admin.execute(f'CREATE DATABASE "{name}"')
        async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
            for name in old_runs + decoys:
                (await client.post("/query", data={"q": f'CREATE DATABASE "{name}"'})).raise_for_status()
        channel = await connection.channel()
        for name in [*old_runs, *decoys]:  # exchanges of earlier runs and others: a run removes only its own
            await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)

        result = await asyncio.wait_for(asyncio.create_subprocess_exec(
            # Only data collection runs, so the final reality check must FAIL (nobody consumes the
            # other agents' queues, no heartbeat from them): the run's exit code is that verdict.
            TRADEBUS, "run", "--agents", "data-collection", "--limit", "5", "--plain", "--timeout", "120",
            cwd=tmp_path, env=run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        ), GUARD)
        out, _ = await asyncio.wait_for(result.communicate(), GUARD)
        text = out.decode()
        assert result.returncode == 1, text
        assert re.search(r"result: \d+ PASS, \d+ WARN, [1-9]\d* FAIL; exit code 1", text), text
        assert "replay fully processed" in text and "exit code 1" in text.splitlines()[-1]
        store = f"{base}_{re.search(RUN_ID, text).group(1)}"  # type: ignore[union-attr]

        rows = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{base}%")
        databases = {r["datname"] for r in rows}
        # keep 3: the two newest earlier runs and this one
        assert databases == {*old_runs[2:], store, *decoys}, databases
        async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
            answer = (await client.get("/query", params={"q": "SHOW DATABASES"})).json()
        influx = {v[0] for s in answer["results"][0]["series"] for v in s["values"] if v[0].startswith(base)}
        assert influx == {*old_runs[2:], store, *decoys}, influx
        for name in [*old_runs, *decoys]:
            check = await connection.channel()
            await check.declare_exchange(name, passive=True)  # raises if it was deleted
            await check.close()
        check = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await check.declare_exchange(store, passive=True)  # the run removed its own bus
    finally:
        channel = await connection.channel()
        for name in [*old_runs, *decoys]:
            await channel.exchange_delete(name)
        await connection.close()
        await admin.close()
        await drop_stores(postgres_server_url, influxdb_server_url, [*old_runs, *decoys, *([store] if store else [])])

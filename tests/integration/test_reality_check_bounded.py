"""`tradebus reality-check` and `tradebus emergency-stop` never hang (issue 15).

Each case runs the real command as a process against a broken endpoint — a listener that accepts
TCP and never answers, a closed port, a missing bus exchange — and asserts the exit code, the
FAIL text that says what is missing and what to do, and that it returned: the 60 s guard is a
guard against hanging (before the fix the silent listener kept it waiting forever), not a speed
assertion.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra.bus import system_topology
from tests.support.bus import cleanup, declare
from tests.support.failures import closed_port
from tests.support.listeners import JsonStream, silent_listener
from tests.support.processes import ROOT
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

TRADEBUS = str(Path(sys.executable).with_name("tradebus"))
GUARD = 60.0  # seconds: a hang guard only


def _env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "250", "HEARTBEAT_INTERVAL": "1", **overrides}
    env.pop("INFLUXDB_TOKEN", None)
    return env


async def _tradebus(*args: str, env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), GUARD)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"tradebus {' '.join(args)} still running after {GUARD:.0f}s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _rows(report: dict[str, Any], status: str = "FAIL") -> list[dict[str, str]]:
    return [row for row in report["checks"] if row["status"] == status]


def _failing(report: dict[str, Any], group: str) -> dict[str, str]:
    rows = [row for row in _rows(report) if row["group"] == group]
    assert rows, f"no FAIL in group {group}: {report['checks']}"
    return rows[0]


async def test_silent_broker_is_a_fail_within_the_bound_not_a_hang(
    postgres_url: str, influxdb_database: tuple[str, str]
) -> None:
    influx_url, influx_db = influxdb_database
    async with silent_listener() as port:
        env = _env(RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{port}/", DATABASE_URL=postgres_url,
                   INFLUXDB_URL=influx_url, INFLUXDB_DATABASE=influx_db)
        code, out, err = await _tradebus("reality-check", "--json", "--probe-timeout", "2", env=env)
    assert code == 1, out + err
    report = json.loads(out)
    broker = _failing(report, "broker")
    assert broker["figure"] == "no answer within 2s"
    assert "AMQP never answers" in broker["detail"] and "RABBITMQ_URL" in broker["detail"]
    assert "guest:guest" not in out  # the password is redacted


async def test_closed_ports_fail_every_store_with_what_to_do() -> None:
    port = closed_port()
    env = _env(RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{port}/",
               DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing",
               INFLUXDB_URL=f"http://127.0.0.1:{port}")
    code, out, err = await _tradebus("reality-check", "--json", "--probe-timeout", "2", env=env)
    assert code == 1, out + err
    report = json.loads(out)
    assert _failing(report, "broker")["figure"] == "unreachable"
    assert "is RabbitMQ running" in _failing(report, "broker")["detail"]
    ledger = _failing(report, "ledger")
    assert ledger["figure"] == "unreachable" and "DATABASE_URL" in ledger["detail"]
    prices = _failing(report, "prices")
    assert prices["figure"] == "unreachable" and "INFLUXDB_URL" in prices["detail"]


async def test_silent_postgres_and_influxdb_end_within_the_bound(rabbitmq_url: str) -> None:
    async with silent_listener() as port:
        env = _env(RABBITMQ_URL=rabbitmq_url, BUS_EXCHANGE=f"tbtest_{uuid.uuid4().hex[:10]}",
                   DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x",
                   INFLUXDB_URL=f"http://127.0.0.1:{port}")
        code, out, err = await _tradebus("reality-check", "--json", "--probe-timeout", "2", env=env)
    assert code == 1, out + err
    report = json.loads(out)
    assert "DATABASE_URL" in _failing(report, "ledger")["detail"]
    assert "INFLUXDB_URL" in _failing(report, "prices")["detail"]


async def test_missing_exchange_says_is_the_system_running_and_points_at_runs(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str]
) -> None:
    influx_url, influx_db = influxdb_database
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    env = _env(RABBITMQ_URL=rabbitmq_url, BUS_EXCHANGE=exchange, DATABASE_URL=postgres_url,
               INFLUXDB_URL=influx_url, INFLUXDB_DATABASE=influx_db)
    code, out, err = await _tradebus("reality-check", env=env)  # the table, as people read it
    assert code == 1, out + err
    assert f"no bus exchange `{exchange}`: is the system running?" in out
    assert "`tradebus run` uses per-run stores: `--run RUN_ID` or `--latest`" in out
    assert "relation" in out and "tradebus migrate" in out  # an unmigrated ledger says what to do


async def test_run_and_latest_target_the_stores_a_run_recorded(rabbitmq_url: str, tmp_path: Path) -> None:
    from agents.run.plan import make_plan, new_run_id
    from agents.run.record import RunRecord
    from infra.settings import Settings

    runs = tmp_path / ".tradebus" / "runs"
    older, newer = new_run_id(), new_run_id()
    base = Settings(BUS_EXCHANGE="tbtest_base")
    for run_id in sorted([older, newer]):
        RunRecord.of(make_plan(base, fresh=True, run_id=run_id, env={}), "replay").write(runs)
    latest = max(older, newer)
    env = _env(RABBITMQ_URL=rabbitmq_url, BUS_EXCHANGE="tbtest_base")
    code, out, err = await _tradebus("reality-check", "--latest", "--probe-timeout", "2", env=env, cwd=tmp_path)
    assert code == 1, out + err
    assert f"run {latest} (" in out and f"bus exchange tbtest_base_{latest}" in out
    assert f"no bus exchange `tbtest_base_{latest}`" in out
    assert f"_{latest}\" does not exist: is the system running?" in out  # the run's ledger database is gone
    code, out, err = await _tradebus("reality-check", "--run", "run_20000101_000000_abcd", env=env, cwd=tmp_path)
    assert code == 2 and "no run 'run_20000101_000000_abcd'" in err and latest in err


async def test_emergency_stop_is_bounded_and_refuses_a_missing_exchange(rabbitmq_url: str) -> None:
    args = ("emergency-stop", "on", "--reason", "test", "--yes")
    async with silent_listener() as port:
        code, out, err = await _tradebus(*args, env=_env(RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{port}/"))
    assert code == 1 and "emergency stop NOT ENGAGED: the broker did not answer within 5s" in err, out + err
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    code, out, err = await _tradebus(*args, env=_env(RABBITMQ_URL=rabbitmq_url, BUS_EXCHANGE=exchange))
    assert code == 1 and f"no bus exchange `{exchange}`: is the system running?" in err, out + err
    import aio_pika

    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_exchange(exchange, passive=True)  # nothing was declared by the refusal


async def test_watch_keeps_reporting_through_a_broker_outage(rabbitmq_url: str) -> None:
    """--watch through a proxy in front of the real broker: cutting the proxy (what a broker
    restart looks like to a client) turns the broker rows to FAIL; restoring it clears them."""
    from urllib.parse import urlsplit

    target = urlsplit(rabbitmq_url)
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    topology = system_topology(exchange)
    await declare(rabbitmq_url, topology)
    try:
        async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5672) as proxy:
            url = target._replace(netloc=f"{target.username}:{target.password}@127.0.0.1:{proxy.port}").geturl()
            process = await asyncio.create_subprocess_exec(
                TRADEBUS, "reality-check", "--json", "--watch", "0.5", "--probe-timeout", "2",
                env=_env(RABBITMQ_URL=url, BUS_EXCHANGE=exchange), cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            stream = JsonStream(process.stdout)  # type: ignore[arg-type]
            try:
                first = await stream.next(GUARD)
                assert not [r for r in _rows(first) if r["group"] in ("broker", "bus")], first["checks"]
                proxy.set_up(False)
                while not [r for r in _rows(await stream.next(GUARD)) if r["group"] == "broker"]:
                    pass
                proxy.set_up(True)
                while True:
                    report = await stream.next(GUARD)
                    if not [r for r in _rows(report) if r["group"] in ("broker", "bus")]:
                        break
                assert any(r["name"].startswith("exchange") and r["status"] == "PASS" for r in report["checks"])
            finally:
                process.terminate()
                await asyncio.wait_for(process.wait(), GUARD)
    finally:
        await cleanup(rabbitmq_url, topology)

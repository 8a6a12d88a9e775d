"""The supervisor with real agent processes on the real broker: a SIGKILLed agent comes back as a
new instance and is reported; a stop is graceful; an unknown agent (exit 3) is not restarted.
And `tradebus run` end to end with the data collection agent: fresh stores, replay to the end,
final portfolio, bus topology removed afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from agents.runtime.supervisor import BackoffPolicy, EventKind, ProcessSpec, ProcessState, Supervisor
from protocol import Heartbeat, decode
from tests.support.bus import cleanup, declare, isolated_topology, wait_until
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


async def _heartbeat_instances(url: str, queue: str) -> set[str]:
    import aio_pika

    connection = await aio_pika.connect(url)
    instances: set[str] = set()
    async with connection:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        while (message := await q.get(no_ack=True, fail=False)) is not None:
            instances.add(decode(message.body, Heartbeat).instance_id)
    return instances


async def test_killed_agent_restarts_as_new_instance_and_stops_gracefully(rabbitmq_url: str, tmp_path: Path) -> None:
    topology = isolated_topology()
    await declare(rabbitmq_url, topology)
    heartbeats = topology.queues[1].name
    log = tmp_path / "slow.log"
    spec = ProcessSpec(
        "slow",
        [sys.executable, "-m", "tests.support.slow_agent", topology.exchange, str(tmp_path / "effects")],
        env={"RABBITMQ_URL": rabbitmq_url},
        log_path=log,
        cwd=ROOT,
    )
    sup = Supervisor([spec], policy=BackoffPolicy(initial=0.2, cap=1.0), stop_timeout=10)
    seen: set[str] = set()
    try:
        await sup.start()

        async def instances_seen(n: int) -> bool:
            seen.update(await _heartbeat_instances(rabbitmq_url, heartbeats))
            return len(seen) >= n

        assert await wait_until(lambda: instances_seen(1), timeout=30, interval=0.3)
        first_pid = sup.pid("slow")
        sup.send_signal("slow", signal.SIGKILL)
        assert await wait_until(lambda: instances_seen(2), timeout=30, interval=0.3), "no heartbeat from a restarted instance"
        assert sup.pid("slow") != first_pid
        assert sup.status["slow"].restarts == 1
        assert [e.kind for e in sup.events if e.kind in (EventKind.CRASHED, EventKind.RESTARTING)] == [
            EventKind.CRASHED,
            EventKind.RESTARTING,
        ]
    finally:
        await sup.stop()
        await cleanup(rabbitmq_url, topology)
    assert sup.status["slow"].last_exit_code == 0  # SIGTERM → the runtime's graceful stop
    assert '"event": "stopped"' in log.read_text()
    assert not any(e.kind is EventKind.KILLED for e in sup.events)


async def test_unknown_agent_exits_3_and_is_not_restarted(tmp_path: Path) -> None:
    spec = ProcessSpec("ghost", [sys.executable, "-m", "agents.cli", "agent", "no-such-agent"], log_path=tmp_path / "g.log", cwd=ROOT)
    # A sentinel under the same supervisor crashes once and then finishes: its restart shows the
    # supervisor restarting within this test, so the ghost's single start is a refusal, not luck.
    marker = tmp_path / "sentinel-started"
    sentinel = ProcessSpec("sentinel", [sys.executable, "-c", (
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); first = not p.exists(); p.touch(); sys.exit(1 if first else 0)"
    )])
    sup = Supervisor([spec, sentinel], policy=BackoffPolicy(initial=0.1, cap=0.1))
    await sup.start()
    await asyncio.wait_for(sup.wait(), 60)  # both supervising tasks ended on their own
    assert sup.status["ghost"].state is ProcessState.NOT_AVAILABLE and sup.status["ghost"].starts == 1
    assert sup.status["sentinel"].state is ProcessState.DONE and sup.status["sentinel"].starts == 2
    assert "unknown agent" in (tmp_path / "g.log").read_text()
    await sup.stop()


def _with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/]*$", f"/{name}", url)


async def test_run_command_replays_to_the_end_in_fresh_stores(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbrun_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RABBITMQ_URL": rabbitmq_url,
        "DATABASE_URL": _with_db(postgres_server_url, base),
        "INFLUXDB_URL": influxdb_server_url,
        "INFLUXDB_DATABASE": base,
        "BUS_EXCHANGE": base,
        "COLUMNS": "200",
    }
    env.pop("INFLUXDB_TOKEN", None)
    tradebus = Path(sys.executable).with_name("tradebus")
    command = [str(tradebus), "run", "--agents", "data-collection", "--limit", "40", "--plain", "--no-check", "--timeout", "90"]
    result = await asyncio.to_thread(
        subprocess.run, command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    run_id = re.search(r"run (run_\d{8}_\d{6}_[0-9a-f]{4})", out).group(1)  # type: ignore[union-attr]
    store = f"{base}_{run_id}"
    assert "40 published (40/40), 40 stored" in out
    assert "replay fully processed" in out and "final portfolio" in out
    assert "data-collection done (exit 0)" in out
    assert (tmp_path / ".tradebus" / "runs" / run_id / "data-collection.log").exists()

    dsn = _with_db(postgres_server_url, "postgres").replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", store) == 1
        run_db = await asyncpg.connect(_with_db(dsn, store))
        try:
            assert await run_db.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await run_db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{store}" WITH (FORCE)')
        await admin.close()
    async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
        answer = (await client.get("/query", params={"db": store, "q": "SELECT COUNT(close) FROM candle"})).json()
        await client.post("/query", data={"q": f'DROP DATABASE "{store}"'})
    assert answer["results"][0]["series"][0]["values"][0][1] == 40

    import aio_pika

    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_exchange(store, passive=True)  # a clean fresh run removes its bus


async def test_queue_depth_is_read_fresh_every_time(rabbitmq_url: str) -> None:
    """The run's completion check and data collection's backpressure poll queue depths: a robust
    channel's cache of passive declares once froze the first answer."""
    from infra.bus import Bus
    from protocol import Candle
    from tests.unit.test_protocol_samples import candle_fields

    topology = isolated_topology()
    bus = Bus(rabbitmq_url, topology, connection_name="depth-test")
    await bus.connect()
    try:
        queue = topology.queues[0].name
        assert await bus.queue_depth(queue) == 0
        await bus.publish(Candle(**candle_fields()))
        assert await wait_until(lambda: _depth_is(bus, queue, 1), timeout=5)
    finally:
        await bus.close()
        await cleanup(rabbitmq_url, topology)


async def _depth_is(bus, queue: str, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await bus.queue_depth(queue) == expected

"""`tradebus run --instances ROLE=N` starts N supervised processes of an agent, shown apart in the
run's output and logs, and the run still replays to its end (decision 0025)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.integration


def _with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/]*$", f"/{name}", url)


async def test_a_run_with_two_analysis_instances_supervises_both_and_replays_to_the_end(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbinst_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RABBITMQ_URL": rabbitmq_url,
        "DATABASE_URL": _with_db(postgres_server_url, base),
        "INFLUXDB_URL": influxdb_server_url,
        "INFLUXDB_DATABASE": base,
        "BUS_EXCHANGE": base,
        "BUS_PARTITIONS": "2",
        "METRICS_PORT": "0",
        "COLUMNS": "200",
    }
    env.pop("INFLUXDB_TOKEN", None)
    tradebus = Path(sys.executable).with_name("tradebus")
    command = [str(tradebus), "run", "--agents", "data-collection,technical-analysis",
               "--instances", "technical-analysis=2", "--limit", "30", "--plain", "--no-check", "--no-api",
               "--timeout", "150"]
    result = await asyncio.to_thread(
        subprocess.run, command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    out = result.stdout
    run_id = re.search(r"run (run_\d{8}_\d{6}_[0-9a-f]{4})", out)
    try:
        assert result.returncode == 0, out + result.stderr
        assert "30 published (30/30), 30 stored" in out
        assert "stopping 3 agents" in out  # data collection and two analysis instances
        logs = tmp_path / ".tradebus" / "runs" / run_id.group(1)  # type: ignore[union-attr]
        for name in ("technical-analysis", "technical-analysis.2"):
            assert '"event": "running"' in (logs / f"{name}.log").read_text(), name
    finally:
        if run_id is not None:
            store = f"{base}_{run_id.group(1)}"
            dsn = _with_db(postgres_server_url, "postgres").replace("postgresql+asyncpg://", "postgresql://")
            admin = await asyncpg.connect(dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{store}" WITH (FORCE)')
            finally:
                await admin.close()
            async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
                await client.post("/query", data={"q": f'DROP DATABASE "{store}"'})


def test_a_single_instance_agent_is_refused_before_anything_starts() -> None:
    result = subprocess.run([str(Path(sys.executable).with_name("tradebus")), "run", "--instances", "data-collection=2"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "runs once" in result.stderr, result.stderr

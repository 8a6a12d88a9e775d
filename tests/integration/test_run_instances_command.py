"""`tradebus run --instances ROLE=N` starts N supervised processes of an agent, shown apart in the
run's output and logs, and the run still replays to its end (decision 0025)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.runs import RUN_ID, drop_stores, run_env

pytestmark = pytest.mark.integration


async def test_a_run_with_two_analysis_instances_supervises_both_and_replays_to_the_end(
    rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, tmp_path: Path
) -> None:
    base = f"tbinst_{uuid.uuid4().hex[:8]}"
    env = {**run_env(rabbitmq_url, postgres_server_url, influxdb_server_url, base),
           "BUS_PARTITIONS": "2", "METRICS_PORT": "0", "COLUMNS": "200"}
    tradebus = Path(sys.executable).with_name("tradebus")
    command = [str(tradebus), "run", "--agents", "data-collection,technical-analysis",
               "--instances", "technical-analysis=2", "--limit", "30", "--plain", "--no-check", "--no-api",
               "--timeout", "150"]
    result = await asyncio.to_thread(
        subprocess.run, command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    out = result.stdout
    run_id = re.search(RUN_ID, out)
    try:
        assert result.returncode == 0, out + result.stderr
        assert "30 published (30/30), 30 stored" in out
        assert "stopping 3 agents" in out  # data collection and two analysis instances
        logs = tmp_path / ".tradebus" / "runs" / run_id.group(1)  # type: ignore[union-attr]
        for name in ("technical-analysis", "technical-analysis.2"):
            assert '"event": "running"' in (logs / f"{name}.log").read_text(), name
    finally:
        if run_id is not None:
            await drop_stores(postgres_server_url, influxdb_server_url, [f"{base}_{run_id.group(1)}"])


def test_a_single_instance_agent_is_refused_before_anything_starts() -> None:
    result = subprocess.run([str(Path(sys.executable).with_name("tradebus")), "run", "--instances", "data-collection=2"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "runs once" in result.stderr, result.stderr

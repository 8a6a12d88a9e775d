"""A heartbeat file for container healthchecks.

When ``TRADEBUS_HEALTH_FILE`` is set (the Docker image sets it), every heartbeat the agent
builds is also written there, atomically. ``tradebus healthcheck`` reads it back: the container
is healthy while the file is fresh and the agent calls itself HEALTHY. A hung event loop stops
refreshing the file, a lost broker turns the agent DEGRADED: both show up as unhealthy.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from protocol import HealthState, Heartbeat

HEALTH_FILE_ENV = "TRADEBUS_HEALTH_FILE"


def health_file_path() -> Path | None:
    value = os.environ.get(HEALTH_FILE_ENV, "").strip()
    return Path(value) if value else None


def write_health_file(heartbeat: Heartbeat, path: Path | None = None) -> None:
    """Write the heartbeat's health summary to the health file (no-op when none is configured)."""
    path = path or health_file_path()
    if path is None:
        return
    summary = {
        "agent": heartbeat.agent,
        "instance_id": heartbeat.instance_id,
        "health": heartbeat.health.value,
        "problems": heartbeat.detail.get("problems", ""),
        "written_at": time.time(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(summary))
        os.replace(tmp, path)  # a reader never sees half a file
    except OSError:
        pass  # the healthcheck will report the stale file; the agent itself must not fail on it


def check_health_file(path: Path, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason): fresh within ``max_age`` seconds and HEALTHY."""
    try:
        summary = json.loads(path.read_text())
        written_at = float(summary["written_at"])
        health = str(summary["health"])
    except FileNotFoundError:
        return False, f"no health file at {path} (agent not started yet?)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable health file {path}: {exc}"
    age = (now if now is not None else time.time()) - written_at
    agent = summary.get("agent", "agent")
    if age > max_age:
        return False, f"{agent}: last heartbeat {age:.0f}s ago (limit {max_age:.0f}s)"
    if health != HealthState.HEALTHY.value:
        problems = summary.get("problems") or "no detail"
        return False, f"{agent} is {health}: {problems}"
    return True, f"{agent} HEALTHY, heartbeat {age:.1f}s ago"

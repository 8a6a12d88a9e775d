"""The consumer's retry bounds, crash journal and suspect isolation, without a broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.bus import RetryPolicy, retry_delay
from infra.bus.isolation import IsolationGate
from infra.bus.journal import CrashJournal
from infra.bus.retry import retrying_problem
from tests.support.processes import ROOT


def test_backoff_doubles_to_the_cap_and_survives_a_long_outage() -> None:
    policy = RetryPolicy(backoff_initial=0.2, backoff_cap=5.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert policy.delay(100_000) == 5.0  # hours of outage: no float overflow
    assert retry_delay(0) == 0.0
    with pytest.raises(ValueError):
        RetryPolicy(backoff_initial=6.0, backoff_cap=5.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_crashes=0)


def test_the_retrying_problem_names_queue_reason_and_start() -> None:
    since = datetime(2026, 12, 2, 6, 31, 2, tzinfo=UTC)
    text = retrying_problem("tb.risk_manager.signals", "Postgres unreachable (ConnectionRefusedError)", since)
    assert text == "retrying tb.risk_manager.signals: Postgres unreachable (ConnectionRefusedError) since 06:31:02"
    assert retrying_problem("q", "r", since, others=2).endswith("(+2 more messages)")


def test_only_other_processes_unfinished_handlings_count_as_crashes(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    dead, alive = CrashJournal(path), CrashJournal(path)  # two processes sharing the file
    dead.begin("q", "m1")  # ... and never ends: the process died
    assert dead.crashes("q", "m1") == 0  # its own row is a handling under way, not a crash
    assert alive.crashes("q", "m1") == 1
    assert alive.crashes("other-queue", "m1") == 0

    alive.begin("q", "m1")
    alive.end("q", "m1", settled=False)  # interrupted (shutdown): the earlier crash still counts
    assert CrashJournal(path).crashes("q", "m1") == 1
    alive.begin("q", "m1")
    alive.end("q", "m1", settled=True)  # acked or dead-lettered: its story is over
    assert CrashJournal(path).crashes("q", "m1") == 0


def test_a_start_is_recorded_before_the_process_can_die(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    script = (
        "import os, sys; from pathlib import Path; from infra.bus.journal import CrashJournal; "
        "CrashJournal(Path(sys.argv[1])).begin('q', 'poison'); os._exit(99)"
    )
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, timeout=60, capture_output=True)
        assert result.returncode == 99, result.stderr
    assert CrashJournal(path).crashes("q", "poison") == 2


def test_an_unusable_journal_disables_itself_and_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    journal = CrashJournal(blocker / "agent.sqlite3")
    journal.begin("q", "m")
    assert journal.crashes("q", "m") == 0
    assert journal.problem is not None and "crash journal" in journal.problem


async def test_a_suspect_waits_for_running_handlers_and_runs_alone() -> None:
    gate = IsolationGate(timeout=5)
    events: list[str] = []

    async def handling(name: str, exclusive: bool, seconds: float) -> None:
        async with gate.enter(exclusive=exclusive):
            events.append(f"start {name}")
            await asyncio.sleep(seconds)
            events.append(f"end {name}")

    first = asyncio.create_task(handling("a", False, 0.1))
    await asyncio.sleep(0.01)
    suspect = asyncio.create_task(handling("suspect", True, 0.1))
    await asyncio.sleep(0.01)
    later = asyncio.create_task(handling("b", False, 0.0))
    await asyncio.gather(first, suspect, later)
    assert events == ["start a", "end a", "start suspect", "end suspect", "start b", "end b"]


async def test_a_suspect_gives_up_waiting_for_a_handler_stuck_in_an_outage_and_can_open_the_gate() -> None:
    gate = IsolationGate(timeout=0.1)
    stuck_release = asyncio.Event()
    events: list[str] = []

    async def stuck() -> None:
        async with gate.enter(exclusive=False):
            await stuck_release.wait()

    async def suspect() -> None:
        async with gate.enter(exclusive=True) as admitted:
            events.append("suspect runs")
            await admitted.release_exclusive()  # a transient failure: it is not the killer
            await asyncio.sleep(0.05)
            events.append("suspect ends")

    async def other() -> None:
        async with gate.enter(exclusive=False):
            events.append("other runs")

    holder = asyncio.create_task(stuck())
    await asyncio.sleep(0.01)
    tasks = [asyncio.create_task(suspect())]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(other()))
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert events == ["suspect runs", "other runs", "suspect ends"]
    stuck_release.set()
    await holder


def test_the_agent_builds_its_bus_policy_and_journal_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agents.runtime.base import Agent
    from infra.settings import Settings

    monkeypatch.setenv("BUS_RETRY_BACKOFF_INITIAL", "0.5")
    monkeypatch.setenv("BUS_RETRY_BACKOFF_CAP", "7")
    monkeypatch.setenv("BUS_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("BUS_MAX_CRASHES", "2")
    monkeypatch.setenv("BUS_CRASH_JOURNAL_DIR", str(tmp_path))
    agent = Agent(Settings(_env_file=None))
    assert agent.bus._retry_policy == RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_cap=7.0, max_crashes=2)
    assert agent.bus._journal is not None and agent.bus._journal.path == tmp_path / "agent.sqlite3"

    monkeypatch.setenv("BUS_RETRY_BACKOFF_INITIAL", "10")
    with pytest.raises(ValueError, match="BUS_RETRY_BACKOFF_INITIAL"):
        Settings(_env_file=None)

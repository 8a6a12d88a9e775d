"""The supervisor on tiny dummy processes: restart with capped backoff, reset after a healthy
run, done vs crash vs not built, graceful stop with SIGKILL after the grace period."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents.runtime.supervisor import (
    BackoffPolicy,
    EventKind,
    ProcessSpec,
    ProcessState,
    Supervisor,
    describe_exit,
)

FAST = BackoffPolicy(initial=0.1, factor=2.0, cap=0.4, healthy_after=30.0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def starts_recorder(path: Path, then: str) -> list[str]:
    """A process that appends its start time to ``path``, then runs ``then``."""
    return py(f"""
        import os, sys, time, signal
        with open({str(path)!r}, "a") as f:
            f.write(f"{{time.monotonic()}}\\n")
        {then}
    """)


async def test_backoff_policy_doubles_and_caps() -> None:
    policy = BackoffPolicy(initial=1, factor=2, cap=30)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(0) == 0


async def test_crashing_process_restarts_with_growing_capped_delays(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    sup = Supervisor([ProcessSpec("crasher", starts_recorder(starts, "sys.exit(1)"))], policy=FAST, stop_timeout=2)
    await sup.start()
    deadline = time.monotonic() + 15
    while sup.status["crasher"].restarts < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sup.stop()

    delays = [e.delay for e in sup.events if e.kind is EventKind.RESTARTING]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert all(e.exit_code == 1 for e in sup.events if e.kind is EventKind.CRASHED)
    times = [float(line) for line in starts.read_text().split()]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # each restart waited at least its backoff delay
    assert all(gap >= delay - 0.02 for gap, delay in zip(gaps, delays))
    assert sup.status["crasher"].state is ProcessState.STOPPED
    assert sup.total_restarts >= 5


async def test_backoff_resets_after_a_healthy_period(tmp_path: Path) -> None:
    policy = BackoffPolicy(initial=0.1, factor=2.0, cap=5.0, healthy_after=0.3)
    starts = tmp_path / "starts"
    spec = ProcessSpec("flaky", starts_recorder(starts, "time.sleep(0.4); sys.exit(2)"))
    sup = Supervisor([spec], policy=policy, stop_timeout=2)
    await sup.start()
    deadline = time.monotonic() + 10
    while sup.status["flaky"].restarts < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sup.stop()
    delays = [e.delay for e in sup.events if e.kind is EventKind.RESTARTING]
    assert delays[:3] == [0.1, 0.1, 0.1]  # every crash came after a healthy run: no escalation
    assert sup.status["flaky"].consecutive_crashes == 1


async def test_exit_zero_is_done_and_exit_three_is_not_restarted(tmp_path: Path) -> None:
    starts_done, starts_missing, starts_sentinel = tmp_path / "done", tmp_path / "missing", tmp_path / "sentinel"
    sup = Supervisor(
        [
            ProcessSpec("finisher", starts_recorder(starts_done, "sys.exit(0)")),
            ProcessSpec("unbuilt", starts_recorder(starts_missing, "sys.exit(3)")),
            # The sentinel crashes on its first start and finishes on its second: its restart
            # proves this supervisor did restart within the test, so the others' single start
            # is a refusal to restart, not a lack of time.
            ProcessSpec("sentinel", starts_recorder(
                starts_sentinel, f"sys.exit(1 if len(open({str(starts_sentinel)!r}).read().split()) == 1 else 0)"
            )),
        ],
        policy=FAST,
    )
    await sup.start()
    await asyncio.wait_for(sup.wait(), 10)  # every supervising task ended on its own: nothing more can start
    assert len(starts_sentinel.read_text().split()) == 2 and sup.status["sentinel"].state is ProcessState.DONE
    assert sup.status["finisher"].state is ProcessState.DONE
    assert sup.status["unbuilt"].state is ProcessState.NOT_AVAILABLE
    assert len(starts_done.read_text().split()) == 1
    assert len(starts_missing.read_text().split()) == 1
    assert sup.total_restarts == 1  # the sentinel's
    kinds = {(e.name, e.kind) for e in sup.events}
    assert ("finisher", EventKind.DONE) in kinds and ("unbuilt", EventKind.NOT_AVAILABLE) in kinds
    await sup.stop()


async def test_graceful_stop_sends_sigterm_and_waits(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code = f"""
        import signal, sys, time
        def term(*_):
            time.sleep(0.3)  # finishing in-flight work
            open({str(marker)!r}, "w").write("terminated cleanly")
            sys.exit(0)
        signal.signal(signal.SIGTERM, term)
        open({str(marker)!r}, "w").write("ready")
        while True:
            time.sleep(0.05)
    """
    sup = Supervisor([ProcessSpec("polite", py(code))], policy=FAST, stop_timeout=5)
    await sup.start()
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text() == "ready") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sup.stop()
    assert marker.read_text() == "terminated cleanly"
    assert sup.status["polite"].last_exit_code == 0
    assert sup.status["polite"].state is ProcessState.STOPPED
    assert not any(e.kind is EventKind.KILLED for e in sup.events)


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").write("x")
        while True:
            time.sleep(0.05)
    """
    sup = Supervisor([ProcessSpec("stubborn", py(code))], policy=FAST, stop_timeout=0.5)
    await sup.start()
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await sup.stop()
    assert 0.4 <= time.monotonic() - started < 5
    assert sup.status["stubborn"].last_exit_code == -signal.SIGKILL
    assert any(e.kind is EventKind.KILLED for e in sup.events)


async def test_killed_process_is_restarted_with_a_new_pid_in_its_own_session(tmp_path: Path) -> None:
    sup = Supervisor([ProcessSpec("victim", py("import time\nwhile True: time.sleep(0.05)"))], policy=FAST, stop_timeout=2)
    await sup.start()
    first = sup.pid("victim")
    assert first is not None
    assert os.getsid(first) == first != os.getsid(0)  # Ctrl-C in the terminal does not reach it
    sup.send_signal("victim", signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (sup.pid("victim") == first or sup.status["victim"].state is not ProcessState.RUNNING) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert sup.pid("victim") != first
    assert sup.status["victim"].restarts == 1
    crashed = [e for e in sup.events if e.kind is EventKind.CRASHED]
    assert crashed[0].exit_code == -signal.SIGKILL
    assert describe_exit(crashed[0].exit_code) == "killed by SIGKILL"
    await sup.stop()


async def test_log_file_collects_every_run_and_env_is_passed(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "echo.log"
    spec = ProcessSpec(
        "echo", py("import os, sys; print('hello', os.environ['TB_MARK']); sys.exit(0)"), env={"TB_MARK": "42"}, log_path=log
    )
    sup = Supervisor([spec], policy=FAST)
    await sup.start()
    await sup.wait_state("echo", ProcessState.DONE, timeout=10)
    await sup.stop()
    assert log.read_text().strip() == "hello 42"


async def test_stop_during_backoff_is_prompt(tmp_path: Path) -> None:
    slow = BackoffPolicy(initial=30, cap=30)
    sup = Supervisor([ProcessSpec("crasher", py("import sys; sys.exit(1)"))], policy=slow)
    await sup.start()
    await sup.wait_state("crasher", ProcessState.BACKOFF, timeout=10)
    started = time.monotonic()
    await sup.stop()
    assert time.monotonic() - started < 2
    assert sup.status["crasher"].state is ProcessState.STOPPED


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ProcessSpec("a", ["true"]), ProcessSpec("a", ["true"])])


async def test_children_get_sigterm_when_the_supervisor_dies(tmp_path: Path) -> None:
    """No orphaned agents: SIGKILL the supervisor process, its child goes too (Linux)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True: time.sleep(0.05)"
    script = f"""
        import asyncio, sys
        from agents.runtime.supervisor import ProcessSpec, Supervisor
        async def main():
            sup = Supervisor([ProcessSpec("child", [sys.executable, "-c", {child!r}])])
            await sup.start()
            await asyncio.sleep(60)
        asyncio.run(main())
    """
    parent = await asyncio.create_subprocess_exec(*py(script), cwd=Path(__file__).resolve().parents[3])
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    child_pid = int(pid_file.read_text())
    parent.kill()
    await parent.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 10
    while alive(child_pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if alive(child_pid):
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail("the child outlived its supervisor")

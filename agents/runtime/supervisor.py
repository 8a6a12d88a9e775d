"""Run agents as separate OS processes: restart a crashed one with capped exponential backoff,
report every restart, stop them all gracefully.

Exit codes decide what happens next:

- 0: the process finished its job (e.g. data collection at the end of a replay): not restarted;
- 3 (``EXIT_NOT_AVAILABLE``): the agent is not built or unknown: reported once, never restarted,
  because restarting cannot make code appear;
- anything else, including death by a signal: a crash, restarted after a backoff delay that
  doubles per consecutive crash up to a cap and starts over once a process ran long enough.

Each child starts in its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order (SIGTERM, a grace period, SIGKILL) instead of every
process receiving SIGINT at once. On Linux a child also gets SIGTERM if the supervisor dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from agents.runtime.launch import EXIT_NOT_AVAILABLE
from infra.logging import get_logger
from infra.metrics import RESTARTS_ENV

log = get_logger(component="supervisor")


class ProcessState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed, waiting to restart
    DONE = "done"  # exited 0 on its own
    NOT_AVAILABLE = "not_available"  # exited 3: not built
    STOPPING = "stopping"
    STOPPED = "stopped"


class EventKind(StrEnum):
    STARTED = "started"
    CRASHED = "crashed"
    RESTARTING = "restarting"
    DONE = "done"
    NOT_AVAILABLE = "not_available"
    STOPPED = "stopped"
    KILLED = "killed"  # did not stop within the grace period


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before restart number n of a crash streak: initial * factor**(n-1), at most cap.

    A process that ran at least ``healthy_after`` seconds before crashing starts a new streak."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    healthy_after: float = 60.0

    def delay(self, consecutive_crashes: int) -> float:
        if consecutive_crashes < 1:
            return 0.0
        return float(min(self.initial * self.factor ** (consecutive_crashes - 1), self.cap))


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: its name, command line, extra environment and log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    # stdout and stderr are appended here (restarts included); None: inherit the supervisor's.
    log_path: Path | None = None
    cwd: Path | None = None


@dataclass
class ProcessStatus:
    """What the supervisor knows about one process, for displays and tests."""

    name: str
    state: ProcessState = ProcessState.STARTING
    pid: int | None = None
    starts: int = 0
    restarts: int = 0
    consecutive_crashes: int = 0
    last_exit_code: int | None = None
    started_monotonic: float | None = None
    next_start_in: float | None = None

    @property
    def alive(self) -> bool:
        return self.state in (ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING)


@dataclass(frozen=True)
class SupervisorEvent:
    """A change worth reporting: a start, a crash, a scheduled restart, a stop."""

    kind: EventKind
    name: str
    pid: int | None = None
    exit_code: int | None = None
    delay: float | None = None
    restarts: int = 0
    uptime: float | None = None


def describe_exit(code: int) -> str:
    """'exit 1' or 'killed by SIGKILL' (asyncio reports death by signal N as -N)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def agent_command(package: str, python: str | None = None) -> list[str]:
    """`python -m agents.<pkg>` with the interpreter running this code (the venv's)."""
    return [python or sys.executable, "-m", package]


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child when its parent dies, so no agent is orphaned.

    Pass as ``preexec_fn`` (see ``child_preexec``)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:
        pass


def child_preexec() -> Callable[[], None] | None:
    """``die_with_parent`` where it works (PR_SET_PDEATHSIG is Linux-only), else nothing."""
    return die_with_parent if sys.platform.startswith("linux") else None


def stop_processes(processes: Iterable[subprocess.Popen[Any]], grace: float = 30.0) -> None:
    """SIGTERM every running process, wait up to ``grace`` seconds in all, then SIGKILL the rest
    (for plain ``Popen`` children: test runs and benchmarks)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Supervisor:
    """Starts every spec's process and keeps it running until :meth:`stop`."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        policy: BackoffPolicy | None = None,
        stop_timeout: float = 20.0,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique: {names}")
        self.specs = {spec.name: spec for spec in specs}
        self.policy = policy or BackoffPolicy()
        self.stop_timeout = stop_timeout
        self._on_event = on_event
        self.status: dict[str, ProcessStatus] = {name: ProcessStatus(name) for name in names}
        self.events: list[SupervisorEvent] = []
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()

    # --- public API -----------------------------------------------------------------------
    async def start(self) -> None:
        """Launch every process; each is then watched by its own task."""
        for name in self.specs:
            self._tasks[name] = asyncio.create_task(self._supervise(name), name=f"supervise-{name}")
        # Return once every process has been spawned (or failed to), so pids are known.
        while any(s.starts == 0 and s.state is ProcessState.STARTING for s in self.status.values()):
            if all(task.done() for task in self._tasks.values()):
                break
            await self._wait_changed(0.05)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pid(self, name: str) -> int | None:
        return self.status[name].pid

    @property
    def total_restarts(self) -> int:
        return sum(s.restarts for s in self.status.values())

    def send_signal(self, name: str, sig: int) -> None:
        """Signal one running process (chaos tests kill an agent this way)."""
        proc = self._procs.get(name)
        if proc is not None and proc.returncode is None:
            proc.send_signal(sig)

    async def wait_state(self, name: str, *states: ProcessState, timeout: float = 30.0) -> ProcessStatus:
        """Wait until a process reaches one of ``states``."""
        deadline = time.monotonic() + timeout
        while self.status[name].state not in states:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{name} is {self.status[name].state}, not {[str(s) for s in states]}")
            await self._wait_changed(remaining)
        return self.status[name]

    async def stop(self) -> None:
        """Graceful stop: SIGTERM to every process, wait up to ``stop_timeout``, then SIGKILL."""
        if not self._stopping.is_set():
            log.info("stopping agents", timeout=self.stop_timeout)
        self._stopping.set()
        self._notify()
        for name, proc in list(self._procs.items()):
            if proc.returncode is None:
                self.status[name].state = ProcessState.STOPPING
                self._signal_group(proc, signal.SIGTERM)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def wait(self) -> None:
        """Until every process ended for good (done, not available, or stopped)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def __aenter__(self) -> "Supervisor":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()

    async def _wait_changed(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _emit(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        fields: dict[str, Any] = {k: v for k, v in vars(event).items() if v is not None and k not in ("kind", "name")}
        if event.exit_code is not None:
            fields["exit"] = describe_exit(event.exit_code)
        level = log.warning if event.kind in (EventKind.CRASHED, EventKind.RESTARTING, EventKind.KILLED) else log.info
        if event.kind is EventKind.NOT_AVAILABLE:
            level = log.error
        level(f"agent {event.kind}", agent_process=event.name, **fields)
        if self._on_event is not None:
            self._on_event(event)
        self._notify()

    @staticmethod
    def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
        # The child leads its own process group (start_new_session): signal the group so any
        # helper process it started goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    async def _spawn(self, spec: ProcessSpec) -> asyncio.subprocess.Process:
        # The child exports its restart count as a metric (infra.metrics: tradebus_agent_restarts).
        env = {**os.environ, **spec.env, RESTARTS_ENV: str(self.status[spec.name].restarts)}
        out: IO[bytes] | None = None
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = spec.log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                *spec.argv,
                env=env,
                cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                preexec_fn=child_preexec(),
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own descriptor

    async def _supervise(self, name: str) -> None:
        spec, status = self.specs[name], self.status[name]
        while not self._stopping.is_set():
            status.state = ProcessState.STARTING
            try:
                proc = await self._spawn(spec)
            except OSError as exc:
                # Cannot even exec (missing interpreter): a crash like any other, retried with backoff.
                log.error("agent could not be started", agent_process=name, error=str(exc))
                code, uptime = 127, 0.0
            else:
                self._procs[name] = proc
                status.pid, status.starts = proc.pid, status.starts + 1
                status.state = ProcessState.STOPPING if self._stopping.is_set() else ProcessState.RUNNING
                status.started_monotonic = started = time.monotonic()
                self._emit(SupervisorEvent(EventKind.STARTED, name, pid=proc.pid, restarts=status.restarts))
                if self._stopping.is_set():  # stop() ran while we were spawning
                    self._signal_group(proc, signal.SIGTERM)
                code = await self._wait_exit(proc, name)
                uptime = time.monotonic() - started
            status.last_exit_code = code
            if self._stopping.is_set():
                status.state = ProcessState.STOPPED
                self._emit(SupervisorEvent(EventKind.STOPPED, name, pid=status.pid, exit_code=code, uptime=uptime))
                return
            if code == 0:
                status.state = ProcessState.DONE
                self._emit(SupervisorEvent(EventKind.DONE, name, pid=status.pid, exit_code=0, uptime=uptime))
                return
            if code == EXIT_NOT_AVAILABLE:
                status.state = ProcessState.NOT_AVAILABLE
                self._emit(SupervisorEvent(EventKind.NOT_AVAILABLE, name, pid=status.pid, exit_code=code))
                return
            status.consecutive_crashes = 1 if uptime >= self.policy.healthy_after else status.consecutive_crashes + 1
            delay = self.policy.delay(status.consecutive_crashes)
            self._emit(SupervisorEvent(EventKind.CRASHED, name, pid=status.pid, exit_code=code, uptime=uptime))
            status.state, status.next_start_in = ProcessState.BACKOFF, delay
            status.restarts += 1
            self._emit(SupervisorEvent(EventKind.RESTARTING, name, exit_code=code, delay=delay, restarts=status.restarts))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            status.next_start_in = None
        status.state = ProcessState.STOPPED
        self._notify()

    async def _wait_exit(self, proc: asyncio.subprocess.Process, name: str) -> int:
        """The exit code; once stopping, SIGKILL after the grace period."""
        wait = asyncio.ensure_future(proc.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not wait.done():
                try:
                    return await asyncio.wait_for(asyncio.shield(wait), self.stop_timeout)
                except asyncio.TimeoutError:
                    self._signal_group(proc, signal.SIGKILL)
                    self._emit(SupervisorEvent(EventKind.KILLED, name, pid=proc.pid))
                    return await wait
            return wait.result()
        finally:
            stop.cancel()

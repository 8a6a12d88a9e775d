"""A replayed slice run to its end, with a fault injected meanwhile, judged against an
undisturbed run of the same candles (ids derive from the candles, so two runs compare row by row).

Used by tests/system: the undisturbed end state is computed once per pytest session and shared
by every comparison (``undisturbed_state``), which keeps the chaos cases within CI's time.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from agents.monitor.reality_check import CheckOptions, run_checks
from infra.influx import InfluxPriceStore
from infra.settings import Settings
from protocol import OrderStatus
from tests.support.own_services import OwnService
from tests.support.system import CONSUMERS, EndState, QueueProbe, SystemRun

Chaos = Callable[[SystemRun], Awaitable[None]]

# Keyed by the settings given on top of the system slice's (tests/system/conftest.py).
_UNDISTURBED: dict[tuple[tuple[str, str], ...], EndState] = {}


async def count(run: SystemRun, sql: str) -> int:
    async with run.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def replay_to_end(run: SystemRun, probe: QueueProbe, chaos: Chaos | None = None, instances: int = 1) -> EndState:
    """Start the consumers (``instances`` of each, one after the other, so the first instance is
    the active consumer of every queue and the others stand by), replay the slice, apply `chaos`
    meanwhile, wait until all settled."""
    for instance in range(1, instances + 1):
        await run.start_consumers(probe.consumers, instance)
    run.start("data_collection")
    if chaos is not None:
        await chaos(run)
    # Bounds sized for a loaded 2-core machine (a 240-candle replay takes 1-4 minutes there).
    await run.wait(lambda: not run.alive("data_collection"), timeout=480, what="the replay to end")
    assert run.processes["data_collection"].returncode == 0, run.log_tail("data_collection")
    await run.wait_settled(probe.depth, timeout=240)
    async with InfluxPriceStore(run.env["INFLUXDB_URL"], run.env["INFLUXDB_DATABASE"]) as store:
        # Every symbol of the run: a several-symbol replay counts all its candles.
        settings = settings_of(run)
        candles = sum([await store.candle_count(settings.exchange, symbol, settings.timeframe) for symbol in settings.symbols])
    return await run.end_state(candles, await probe.dead_letters(run.topology))


def remember_undisturbed(state: EndState, **env: str) -> None:
    """Keep an undisturbed run's end state (of the system slice with ``env`` on top) for the
    comparisons of this session."""
    _UNDISTURBED[_key(env)] = state


async def undisturbed_state(make_system: Callable[..., Awaitable[SystemRun]], probe: QueueProbe, **env: str) -> EndState:
    """The end state of an undisturbed run of the system slice: the session's first one, or a new run."""
    state = _UNDISTURBED.get(_key(env))
    if state is None:
        started = time.monotonic()
        state = await replay_to_end(await make_system(**env), probe)
        print(f"undisturbed run: {time.monotonic() - started:.1f}s")
        remember_undisturbed(state, **env)
    return state


def _key(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    # The slice and the agents' settings decide the outcome, not the services' addresses.
    return tuple(sorted(env.items()))


def settings_of(run: SystemRun) -> Settings:
    return Settings(**run.env)  # type: ignore[arg-type]


async def _reached(run: SystemRun, sql: str, at_least: int) -> bool:
    return await count(run, sql) >= at_least


def kill_when(agent: str, sql: str, at_least: int) -> Chaos:
    """SIGKILL `agent` once `sql` counts `at_least`, and restart it as a supervisor would."""

    async def chaos(run: SystemRun) -> None:
        await run.wait(lambda: _reached(run, sql, at_least), timeout=240, what=f"{sql} >= {at_least}")
        run.kill(agent, signal.SIGKILL)
        run.restart(agent)

    return chaos


def outage_when(service: OwnService, sql: str, at_least: int, probe: QueueProbe, seconds: float = 10) -> Chaos:
    """Stop `service` for `seconds` once `sql` counts `at_least`, start it again, and wait until
    every consumer is attached again (the agents re-established their consumers)."""

    async def chaos(run: SystemRun) -> None:
        await run.wait(lambda: _reached(run, sql, at_least), timeout=240, what=f"{sql} >= {at_least}")
        started = time.monotonic()
        await service.outage(seconds)
        print(f"{type(service).__name__} down for {time.monotonic() - started:.1f}s")
        await run.wait(lambda: _answering(lambda: run.consumers_attached(probe.consumers)), timeout=90,
                       what="every agent's consumers attached again after the outage")

    return chaos


async def _answering(check: Callable[[], Awaitable[bool]]) -> bool:
    """False while the broker cannot be asked yet (the probe's connection is reconnecting)."""
    try:
        return await check()
    except Exception:  # noqa: BLE001 - any failure here means "not back yet"; the wait is bounded
        return False


def assert_books_are_clean(state: EndState) -> None:
    approved = {sid for sid, d in state.decisions.items() if d[2] == "APPROVED"}
    assert approved, "the slice must trade, or this test proves nothing"
    assert len(state.orders) == len(approved) == state.order_rows
    assert all(OrderStatus(status).is_terminal for status, _, _ in state.orders.values()), state.orders
    assert set(state.reservations.values()) <= {"SETTLED", "RELEASED", "EXPIRED"}, state.reservations
    for asset, (total, available, reserved) in state.balances.items():
        assert available + reserved == total and reserved == 0, asset
    assert state.dead_letters == {}


async def assert_same_as_undisturbed(run: SystemRun, disturbed: EndState, undisturbed: EndState) -> None:
    """Row by row equal to the undisturbed run, clean books, no dead letter, reality check PASS."""
    assert_books_are_clean(disturbed)
    assert set(disturbed.decisions) == set(undisturbed.decisions), "a signal was lost or invented"
    differences = disturbed.differences(undisturbed)
    warnings = {a: run.warnings(a)[-15:] for a in CONSUMERS}
    audits = await run.audits(set(differences.get("decisions", {})))
    assert differences == {}, f"differences (disturbed, undisturbed): {differences}\nwarnings: {warnings}\naudits: {audits}"
    await assert_reality_check_passes(run)


async def assert_reality_check_passes(run: SystemRun) -> None:
    settings = settings_of(run)
    report = await run_checks(settings, CheckOptions.from_settings(settings, replay_finished=True))
    assert report.exit_code == 0, [c for c in report.failed]


def log_events(run: SystemRun, agent: str, event: str) -> list[dict[str, Any]]:
    """The JSON log records named ``event`` of every instance of ``agent``, oldest instance first."""
    found: list[dict[str, Any]] = []
    for path in sorted(run.logs.glob(f"{agent}.*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == event:
                    found.append({**record, "instance": path.name})
    return found

"""Chaos: the replayed slice with a store restarted or an agent killed mid-run ends exactly
where an undisturbed run of the same candles ends — row by row, with no dead letter and the
reality check PASS (DESIGN.md "Faults": the proof is a chaos test).

The stores restarted here are private instances this module starts on free ports
(tests/support/own_services.py): other people's tests use the machine's shared RabbitMQ,
Postgres and InfluxDB at the same time, and those are never stopped. Every case of the module
runs on the private instances, and all compare with one undisturbed run (tests/support/chaos.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.chaos import (
    assert_same_as_undisturbed,
    kill_when,
    log_events,
    outage_when,
    replay_to_end,
    undisturbed_state,
)
from tests.support.own_services import OwnInfluxDB, OwnPostgres, OwnRabbitMQ, ServiceUnavailable
from tests.support.services import unavailable
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import COUNT, SYSTEM_ENV

# A case replays the slice once or twice (the first also runs the shared undisturbed replay):
# more than the suite's default 300 s per test on a loaded 2-core machine.
pytestmark = [pytest.mark.system, pytest.mark.chaos, pytest.mark.timeout(900)]

DECISIONS = "SELECT count(*) FROM risk_decisions"


@dataclass(frozen=True)
class OwnServices:
    postgres: OwnPostgres
    rabbitmq: OwnRabbitMQ
    influxdb: OwnInfluxDB


@pytest.fixture(scope="module")
def own() -> Iterator[OwnServices]:
    """One private Postgres, RabbitMQ node and influxd for this module, started in parallel
    and removed at the end whatever happened."""
    with ExitStack() as stack:
        try:
            services = OwnServices(OwnPostgres(), OwnRabbitMQ(), OwnInfluxDB())
        except ServiceUnavailable as exc:
            unavailable(f"private services for the chaos tests: {exc}")
        for service in (services.postgres, services.rabbitmq, services.influxdb):
            stack.callback(service.close)
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            failures = [f.exception() for f in [pool.submit(s.start) for s in
                                                  (services.postgres, services.rabbitmq, services.influxdb)]]
        problems = [str(f) for f in failures if f is not None]
        if problems:
            unavailable("private services for the chaos tests: " + "; ".join(problems))
        print(f"private services started in {time.monotonic() - started:.1f}s")
        yield services


# The system fixtures (make_system, probe) take these URLs: every case here runs on the private
# instances.
@pytest.fixture(scope="module")
def rabbitmq_url(own: OwnServices) -> str:
    return own.rabbitmq.url


@pytest.fixture(scope="module")
def postgres_server_url(own: OwnServices) -> str:
    return own.postgres.url


@pytest.fixture(scope="module")
def influxdb_server_url(own: OwnServices) -> str:
    return own.influxdb.url


@pytest.mark.parametrize(
    ("agent", "sql", "at_least"),
    [
        ("data_collection", DECISIONS, 10),
        ("technical_analysis", DECISIONS, 10),
        ("strategy", DECISIONS, 10),
        ("execution", "SELECT count(*) FROM orders", 3),
        ("risk_manager", DECISIONS, 25),
    ],
)
async def test_an_agent_killed_mid_run_changes_nothing_in_the_end_state(
    make_system: Callable[..., Any], probe: QueueProbe, agent: str, sql: str, at_least: int
) -> None:
    undisturbed = await undisturbed_state(make_system, probe)
    run: SystemRun = await make_system()
    started = time.monotonic()
    disturbed = await replay_to_end(run, probe, kill_when(agent, sql, at_least))
    print(f"{agent} killed: {time.monotonic() - started:.1f}s")

    assert run.restarts == {agent: 1}
    assert disturbed.candles == COUNT
    await assert_same_as_undisturbed(run, disturbed, undisturbed)
    if agent == "data_collection":
        assert_replay_resumed_without_doubling_or_skipping(run)


def assert_replay_resumed_without_doubling_or_skipping(run: SystemRun) -> None:
    """The restarted replay went on from one batch before where the killed one stopped."""
    progress = [e for e in log_events(run, "data_collection", "replay progress") if e["instance"].endswith(".0.log")]
    (resumed,) = log_events(run, "data_collection", "replay resuming after the newest stored candle")
    (complete,) = log_events(run, "data_collection", "replay complete")
    batch = int(SYSTEM_ENV["INGEST_BATCH_SIZE"])
    before_kill = progress[-1]["published"] if progress else 0
    # Re-published: at most the batch in hand at the kill plus one candle (never the whole slice).
    assert abs(before_kill - resumed["skipped"]) <= batch + 1, (before_kill, resumed)
    # Nothing skipped: the second instance published every candle from its resume point on.
    assert complete["resumed_after"] + complete["published"] == complete["total"] == COUNT, complete


@pytest.mark.parametrize("store", ["postgres", "rabbitmq", "influxdb"])
async def test_a_store_restarted_mid_run_changes_nothing_in_the_end_state(
    make_system: Callable[..., Any], probe: QueueProbe, own: OwnServices, store: str
) -> None:
    """Postgres and InfluxDB stopped ~10 s and started; RabbitMQ ``stop_app``, ~10 s, ``start_app``."""
    undisturbed = await undisturbed_state(make_system, probe)
    run: SystemRun = await make_system()
    started = time.monotonic()
    disturbed = await replay_to_end(run, probe, outage_when(getattr(own, store), DECISIONS, 8, probe))
    print(f"{store} outage: {time.monotonic() - started:.1f}s")

    assert run.restarts == {}
    await assert_same_as_undisturbed(run, disturbed, undisturbed)

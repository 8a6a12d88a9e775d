"""Partitions and instances (issue 19, decision 0025): two symbols on four partitions, two
instances of every consuming agent, and the active instance of each SIGKILLed mid-run.

The standbys take the dead instances' partitions over (single active consumer) and the run ends
where an undisturbed run with one instance of each agent ends — row by row: decisions, orders,
reservations, balances, positions, fills — with no dead letter and the reality check PASS.
The two symbols are the shipped real series of the two-symbol slice (decision 0027).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from protocol import topics
from tests.support.chaos import Chaos, assert_same_as_undisturbed, count, replay_to_end
from tests.support.failover import measure_takeover
from tests.support.system import CONSUMERS, QueueProbe, SystemRun
from tests.system.conftest import SYMBOLS, TWO_SYMBOLS_ENV, two_symbol_slice

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

PARTITIONS = 4
DECISIONS = "SELECT count(*) FROM risk_decisions"
# Settings of both runs: the two-symbol slice, four partitions, and limits that cannot bind
# differently with the order in which the two symbols' signals reach the shared ledger. The
# per-trade cap (500, conftest) must always bind: a fraction of what is available would size an
# order by what the other symbol happened to hold at that moment, so the account is large.
ENV = {
    **TWO_SYMBOLS_ENV,
    "BUS_PARTITIONS": str(PARTITIONS),
    "PAPER_BALANCES": "USDT:100000",
    "RISK_MAX_OPEN_POSITIONS": "50",
    "RISK_MAX_ORDERS_PER_HOUR": "1000",
    "RISK_MAX_ORDERS_PER_DAY": "10000",
}


def kill_active_instances(at_least: int, takeover: dict[str, float]) -> Chaos:
    """Once ``at_least`` decisions exist, SIGKILL the first instance of every consuming agent
    (the active consumer of every partition: it subscribed first) at once, measure how long the
    standbys take to move the pipeline on, and restart the killed ones (they stand by now)."""

    async def chaos(run: SystemRun) -> None:
        await run.wait(lambda: _reached(run, at_least), timeout=240, what=f"{DECISIONS} >= {at_least}")

        def kill() -> None:
            for agent in CONSUMERS:
                run.kill(agent, signal.SIGKILL)

        takeover["seconds"] = await measure_takeover(kill, lambda: count(run, DECISIONS), timeout=120)
        for agent in CONSUMERS:
            run.restart(agent)

    return chaos


async def _reached(run: SystemRun, at_least: int) -> bool:
    return await count(run, DECISIONS) >= at_least


def test_symbols_spread_over_the_partitions() -> None:
    """The slice proves something only if its two symbols land in different partitions."""
    assert len({topics.partition_of(s, PARTITIONS) for s in SYMBOLS}) == len(SYMBOLS)


async def test_killed_active_instances_hand_over_and_the_end_equals_one_undisturbed_instance(
    make_system: Callable[..., Any], probe: QueueProbe
) -> None:
    started = time.monotonic()
    undisturbed = await replay_to_end(await make_system(**ENV), probe)
    print(f"undisturbed, one instance each: {time.monotonic() - started:.1f}s")
    traded = {symbol for (_, symbol), _ in undisturbed.positions.items()}
    assert traded == set(SYMBOLS), f"both symbols must trade, or this test proves little: {traded}"
    assert undisturbed.candles == sum(len(candles) for candles in two_symbol_slice().values())

    run: SystemRun = await make_system(**ENV)
    takeover: dict[str, float] = {}
    started = time.monotonic()
    disturbed = await replay_to_end(run, probe, kill_active_instances(4, takeover), instances=2)
    print(f"two instances each, actives killed: {time.monotonic() - started:.1f}s; "
          f"standbys moved the pipeline on {takeover['seconds']:.2f}s after the SIGKILL")

    assert run.restarts == {agent: 1 for agent in CONSUMERS}
    # The standbys took over, and rebuilt the per-symbol state they had never held from InfluxDB.
    for agent, event in (("technical_analysis", "window warmed up from InfluxDB"),
                         ("strategy", "history warmed from influxdb")):
        warmed = [line for line in _log(run, f"{agent}#2") if f'"{event}"' in line]
        assert {s for s in SYMBOLS if any(s in line for line in warmed)} == set(SYMBOLS), (agent, warmed)
    await assert_same_as_undisturbed(run, disturbed, undisturbed)


def _log(run: SystemRun, name: str) -> list[str]:
    return [line for path in sorted(run.logs.glob(f"{name}.*.log")) for line in path.read_text(errors="replace").splitlines()]

"""Several instances per role on partitioned queues, and the failover time (bench_scale.py).

A bench_pipeline run with two symbols (tests/support/two_symbols.py), ``BUS_PARTITIONS`` partition queues per
role, and ``instances`` processes of every consuming agent started together (each active on
its share of the partitions and standby on the others', where the build splits them; otherwise
the first to subscribe is active on all, decision 0025). With ``kill_after`` decisions made, the
first instance of every consuming agent is SIGKILLed and the failover time is
how long until the standbys move the pipeline on (``tests/support/failover.measure_takeover``:
until the count of risk decisions grows again).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench_pipeline import (
    ATTACH_SECONDS,
    COLLECTOR,
    CONSUMERS,
    POLL_SECONDS,
    Agents,
    BenchError,
    PipelineResult,
    Probe,
    Run,
    Urls,
    pipeline,
)

from agents.runtime.supervisor import child_preexec
from infra.bus import system_topology
from infra.db import create_engine
from tests.support.failover import measure_takeover
from tests.support.two_symbols import SYMBOLS, write_slices

PARTITIONS = 4


class InstanceAgents(Agents):
    """Agents where ``name#N`` is the N-th of ``instances`` instances of an agent (its own process,
    log and AGENT_INSTANCE: instances started together split the partitions, decision 0025)."""

    def __init__(self, logs: Path, env: dict[str, str], instances: int) -> None:
        super().__init__(logs, env)
        self.instances = instances

    def start(self, agent: str) -> None:
        role, _, number = agent.partition("#")
        log = open(self.logs / f"{agent}.log", "wb")  # noqa: SIM115  (closed in stop())
        self._files.append(log)
        env = {**self.env, "AGENT_INSTANCE": number or "1", "AGENT_INSTANCES": str(self.instances)}
        if role == COLLECTOR:
            env.update(AGENT_INSTANCE="1", AGENT_INSTANCES="1")
        self.processes[agent] = subprocess.Popen(
            [sys.executable, "-m", f"agents.{role}"], cwd=Path(__file__).resolve().parent.parent, env=env,
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_preexec(),
        )

    def kill(self, agent: str) -> None:
        """SIGKILL, and forget it: a killed instance is not an agent that failed the run."""
        process = self.processes.pop(agent)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def logged(self, agent: str, event: str) -> bool:
        path = self.logs / f"{agent}.log"
        return path.exists() and f'"event": "{event}"' in path.read_text(errors="replace")


@dataclass(frozen=True)
class InstancesResult:
    pipeline: PipelineResult
    failover: float | None


class InstancesRun(Run):
    """A Run with two symbols, partitioned queues and ``instances`` of every consumer."""

    def __init__(self, urls: Urls, args: argparse.Namespace, instances: int, kill_after: int | None) -> None:
        super().__init__(urls, args)
        self.instances, self.kill_after = instances, kill_after
        self.topology = system_topology(self.name, PARTITIONS)
        self.queues = [spec.name for spec in self.topology.queues if spec.consumer in CONSUMERS]
        files = write_slices(self.logs, args.offset, args.candles)
        self.agents = InstanceAgents(self.logs, {
            **self.agents.env, "SYMBOLS": ",".join(SYMBOLS), "BUS_PARTITIONS": str(PARTITIONS),
            "REPLAY_FILE": ";".join(f"{s}={p}" for s, p in files.items()), "REPLAY_OFFSET": "0",
            # Limits that bind the same whichever symbol's signal reaches the ledger first.
            "PAPER_BALANCES": "USDT:100000", "RISK_MAX_OPEN_POSITIONS": "50", "RISK_MAX_ORDERS_PER_HOUR": "1000",
            "RISK_MAX_ORDERS_PER_DAY": "10000",
            # Two processes of a role would want one metrics port; the benchmark reads none.
            "METRICS_PORT": "0",
        }, instances)
        self.failover: float | None = None
        self._chaos: asyncio.Task[None] | None = None

    async def _start_consumers(self, probe: Probe) -> None:
        # Every instance at once: each subscribes first to its own share of the partitions.
        names = [f"{agent}#{n}" for n in range(2, self.instances + 1) for agent in CONSUMERS]
        for name in names:
            self.agents.start(name)
        await super()._start_consumers(probe)
        deadline = min(self.deadline, time.monotonic() + ATTACH_SECONDS)
        while not all(self.agents.logged(name, "running") for name in names):
            self.agents.check_alive()
            self._check_time("waiting for the standby instances", "not all of them running", deadline)
            await asyncio.sleep(POLL_SECONDS)
        if self.kill_after is not None:
            self._chaos = asyncio.create_task(self._kill_actives(), name="kill-actives")

    async def _kill_actives(self) -> None:
        engine = create_engine(self.database_url)
        try:
            while await _decisions(engine) < (self.kill_after or 0):
                await asyncio.sleep(POLL_SECONDS / 5)
            assert isinstance(self.agents, InstanceAgents)
            agents = self.agents

            def kill() -> None:
                for agent in CONSUMERS:
                    agents.kill(agent)

            self.failover = await measure_takeover(kill, lambda: _decisions(engine), timeout=120)
        finally:
            await engine.dispose()

    async def _drive(self, probe: Probe, engine: AsyncEngine) -> PipelineResult:
        result = await super()._drive(probe, engine)
        if self._chaos is not None:
            await self._chaos  # raises if the standbys never moved on
        return result


async def _decisions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM risk_decisions"))).scalar_one())


async def instances_run(urls: Urls, args: argparse.Namespace, instances: int, kill_after: int | None) -> InstancesResult:
    run = InstancesRun(urls, args, instances, kill_after)
    killing = f", the active instances SIGKILLed after {kill_after} decisions" if kill_after is not None else ""
    print(f"instances  {len(SYMBOLS)} symbols x {args.candles} candles, {PARTITIONS} partitions, "
          f"{instances} instance(s) of every consumer{killing}", flush=True)
    try:
        return InstancesResult(await pipeline(urls, args, run), run.failover)
    except TimeoutError as exc:
        raise BenchError(f"failover: {exc}") from None


__all__ = ["PARTITIONS", "SYMBOLS", "InstancesResult", "instances_run"]

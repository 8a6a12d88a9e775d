"""The five agents as separate OS processes on the real services, with isolated names.

A `SystemRun` owns one bus exchange, one Postgres database and one InfluxDB database; it starts,
kills and restarts agents, waits until the pipeline has settled, and reads the end state
straight from the stores so runs can be compared.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from agents.runtime.supervisor import child_preexec, stop_processes
from infra.bus import system_topology
from infra.db import create_engine
from protocol import OrderStatus
from tests.support.processes import ROOT

AGENT_MODULES = {
    "technical_analysis": "agents.technical_analysis",
    "strategy": "agents.strategy",
    "risk_manager": "agents.risk_manager",
    "execution": "agents.execution",
    "data_collection": "agents.data_collection",
    "api": "agents.api",  # the console (tests/browser): one more process on the same stores and bus
}
CONSUMERS = ("technical_analysis", "strategy", "risk_manager", "execution")
_TERMINAL = [status.value for status in OrderStatus if status.is_terminal]


@dataclass
class EndState:
    """What a run left behind, in comparable form (ids and exact Decimals)."""

    candles: int
    decisions: dict[str, tuple[str, str, str, str]]  # signal_id -> (strategy, side, decision, reason)
    orders: dict[str, tuple[str, Decimal, Decimal | None]]  # client_order_id -> (status, filled, avg)
    order_rows: int
    reservations: dict[str, str]  # client_order_id -> status
    balances: dict[str, tuple[Decimal, Decimal, Decimal]]
    positions: dict[tuple[str, str], tuple[Decimal, Decimal]]  # (strategy, symbol) -> (qty, realised)
    fills: int
    dead_letters: dict[str, int] = field(default_factory=dict)

    def differences(self, other: EndState) -> dict[str, Any]:
        """What differs from ``other``, keyed by part and id: readable where a dict diff is not."""
        mine, theirs = self.comparable(), other.comparable()
        found: dict[str, Any] = {}
        for part, value in mine.items():
            if value == theirs[part]:
                continue
            if isinstance(value, dict):
                keys = set(value) | set(theirs[part])
                found[part] = {k: (value.get(k), theirs[part].get(k)) for k in keys if value.get(k) != theirs[part].get(k)}
            else:
                found[part] = (value, theirs[part])
        return found

    def comparable(self) -> dict[str, Any]:
        """Everything a disturbed run must reproduce (dead letters are checked separately)."""
        return {
            "candles": self.candles,
            "decisions": self.decisions,
            "orders": self.orders,
            "order_rows": self.order_rows,
            "reservations": self.reservations,
            "balances": self.balances,
            "positions": self.positions,
            "fills": self.fills,
        }


class SystemRun:
    """One isolated deployment of the five agents; use as an async context manager."""

    def __init__(
        self,
        *,
        rabbitmq_url: str,
        database_url: str,
        influx: tuple[str, str],
        exchange: str,
        env: dict[str, str],
        logs: Path,
    ) -> None:
        self.exchange = exchange
        self.database_url = database_url
        # BUS_PARTITIONS of the run (its agents build the same topology from it).
        self.topology = system_topology(exchange, int(env.get("BUS_PARTITIONS", "1")))
        self.env = {
            "RABBITMQ_URL": rabbitmq_url,
            "DATABASE_URL": database_url,
            "INFLUXDB_URL": influx[0],
            "INFLUXDB_DATABASE": influx[1],
            "BUS_EXCHANGE": exchange,
            "HEARTBEAT_INTERVAL": "1",
            "REPLAY_EXIT_ON_END": "true",
            "REPLAY_SPEED": "max",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.logs = logs
        # Settings for one agent only (its own METRICS_PORT, for instance), on top of ``env``.
        self.agent_env: dict[str, dict[str, str]] = {}
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.restarts: dict[str, int] = {}
        self.engine = create_engine(database_url)

    # --- processes -------------------------------------------------------------------------
    def start(self, agent: str) -> None:
        """Start ``agent``; ``agent#2`` is a second instance of it (its own process and log)."""
        log = open(self.logs / f"{agent}.{self.restarts.get(agent, 0)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", AGENT_MODULES[agent.split("#", 1)[0]]],
            cwd=ROOT,
            env={**os.environ, **self.env, **self.agent_env.get(agent, {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=child_preexec(),  # a killed test run leaves no agent behind
        )
        self.processes[agent] = process

    def kill(self, agent: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[agent]
        process.send_signal(sig)
        process.wait(timeout=30)

    def restart(self, agent: str) -> None:
        self.restarts[agent] = self.restarts.get(agent, 0) + 1
        self.start(agent)

    def alive(self, agent: str) -> bool:
        return self.processes[agent].poll() is None

    def log_tail(self, agent: str, lines: int = 40) -> str:
        path = self.logs / f"{agent}.{self.restarts.get(agent, 0)}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def warnings(self, agent: str) -> list[str]:
        """Warning and error lines of every instance of ``agent`` (restarts included)."""
        lines: list[str] = []
        for path in sorted(self.logs.glob(f"{agent}.*.log")):
            lines += [line[:400] for line in path.read_text(errors="replace").splitlines()
                      if '"level": "warning"' in line or '"level": "error"' in line]
        return lines

    def crashed(self) -> list[str]:
        return [
            f"{name} exited {proc.returncode}:\n{self.log_tail(name)}"
            for name, proc in self.processes.items()
            if proc.poll() not in (None, 0)
        ]

    async def start_consumers(self, bus_depth: Any, instance: int = 1) -> None:
        """Start the four consuming agents and wait until each queue has its consumer;
        ``instance`` > 1: one more instance of each (``agent#N``), waited for until each says it
        is running (subscribed to all its queues: a waiting single-active consumer is not counted
        among a quorum queue's consumers)."""
        names = [agent if instance == 1 else f"{agent}#{instance}" for agent in CONSUMERS]
        for name in names:
            if name not in self.processes:
                self.start(name)
        # Generous: four Python processes importing on a loaded 2-core machine take a while.
        await self.wait(lambda: self.consumers_attached(bus_depth), timeout=150, what="consumers attached")
        if instance > 1:
            await self.wait(lambda: all(self.logged(name, "running") for name in names), timeout=150,
                            what=f"instance {instance} of every consumer running")

    def logged(self, name: str, event: str) -> bool:
        """Whether the current log of process ``name`` holds a JSON line with event ``event``."""
        path = self.logs / f"{name}.{self.restarts.get(name, 0)}.log"
        return path.exists() and f'"event": "{event}"' in path.read_text(errors="replace")

    async def consumers_attached(self, consumers_of: Any) -> bool:
        """Whether every consuming agent's queue has a consumer."""
        for spec in self.topology.queues:
            if spec.consumer in CONSUMERS and await consumers_of(spec.name) == 0:
                return False
        return True

    async def stop_all(self) -> None:
        stop_processes(self.processes.values())
        await self.engine.dispose()

    async def wait(self, predicate: Any, *, timeout: float, what: str, interval: float = 0.3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crashed = self.crashed()
            if crashed:
                raise AssertionError(f"an agent crashed while waiting for {what}:\n" + "\n".join(crashed))
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    # --- settling --------------------------------------------------------------------------
    async def _progress(self, depth: Any) -> tuple[Any, ...]:
        depths = [await depth(spec.name) for spec in self.topology.queues if spec.consumer in CONSUMERS]
        async with self.engine.connect() as conn:
            counts = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM risk_decisions), (SELECT count(*) FROM order_events), "
                        "(SELECT count(*) FROM fills), (SELECT count(*) FROM orders WHERE NOT (status = ANY(:t))), "
                        "(SELECT count(*) FROM reservations WHERE status IN ('HELD', 'PARTIALLY_SETTLED'))"
                    ),
                    {"t": _TERMINAL},
                )
            ).one()
        return (sum(depths), *counts)

    async def wait_settled(self, depth: Any, *, timeout: float = 120, quiet_polls: int = 5) -> None:
        """Until every consumer queue is empty, nothing is open, and nothing moved for a while."""
        last: tuple[Any, ...] | None = None
        steady = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crashed = [c for c in self.crashed() if not c.startswith("data_collection exited 0")]
            if crashed:
                raise AssertionError("an agent crashed:\n" + "\n".join(crashed))
            progress = await self._progress(depth)
            idle = progress[0] == 0 and progress[4] == 0 and progress[5] == 0
            steady = steady + 1 if (idle and progress == last) else 0
            if steady >= quiet_polls:
                return
            last = progress
            await asyncio.sleep(0.4)
        raise AssertionError(f"pipeline did not settle in {timeout}s; last progress {last}")

    # --- end state -------------------------------------------------------------------------
    async def audits(self, signal_ids: set[str]) -> dict[str, dict[str, Any]]:
        """The audit rows (detail and every input) of ``signal_ids``: why each was decided as it was."""
        if not signal_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT signal_id, decision, reason, detail, inputs FROM risk_decisions "
                     "WHERE CAST(signal_id AS text) = ANY(:ids)"),
                {"ids": sorted(signal_ids)},
            )
            return {str(r[0]): {"decision": r[1], "reason": r[2], "detail": r[3], "inputs": r[4]} for r in rows}

    async def end_state(self, candle_count: int, dead_letters: dict[str, int]) -> EndState:
        async with self.engine.connect() as conn:
            async def rows(sql: str) -> list[Any]:
                return list((await conn.execute(text(sql))).all())

            decisions = {
                str(r[0]): (r[1], r[2], r[3], r[4] or "")
                for r in await rows("SELECT signal_id, strategy_id, side, decision, reason FROM risk_decisions")
            }
            orders = {
                r[0]: (r[1], Decimal(r[2]), None if r[3] is None else Decimal(r[3]))
                for r in await rows("SELECT client_order_id, status, filled, average_price FROM orders")
            }
            reservations = {r[0]: r[1] for r in await rows("SELECT client_order_id, status FROM reservations")}
            balances = {
                r[0]: (Decimal(r[1]), Decimal(r[2]), Decimal(r[3]))
                for r in await rows("SELECT asset, total, available, reserved FROM balances")
            }
            positions = {
                (r[0], r[1]): (Decimal(r[2]), Decimal(r[3]))
                for r in await rows("SELECT strategy_id, symbol, quantity, realised_pnl FROM positions")
            }
            fills = (await rows("SELECT count(*) FROM fills"))[0][0]
        return EndState(
            candles=candle_count,
            decisions=decisions,
            orders=orders,
            order_rows=len(orders),
            reservations=reservations,
            balances=balances,
            positions=positions,
            fills=int(fills),
            dead_letters=dead_letters,
        )


class QueueProbe:
    """Depth and consumer count of queues by passive declare, over one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None

    async def __aenter__(self) -> QueueProbe:
        import aio_pika

        self._connection = await aio_pika.connect_robust(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _declared(self, queue: str) -> tuple[int, int]:
        """(ready, consumers); (0, 0) for a queue no agent has declared yet."""
        from agents.monitor.bus_checks import declared

        channel = await self._connection.channel()
        try:
            return await declared(channel, queue) or (0, 0)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def depth(self, queue: str) -> int:
        return (await self._declared(queue))[0]

    async def consumers(self, queue: str) -> int:
        return (await self._declared(queue))[1]

    async def dead_letters(self, topology: Any) -> dict[str, int]:
        counts = {spec.dead_letter_queue: await self.depth(spec.dead_letter_queue) for spec in topology.queues}
        return {name: n for name, n in counts.items() if n}

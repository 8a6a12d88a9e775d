#!/usr/bin/env python3
"""End-to-end benchmark: the five agents as processes on replayed real candles.

Prints, from one run on this machine:
- baseline: a raw aio-pika single hop (persistent message, publisher confirm, consumed and
  acked, one message at a time): messages per second and publish-to-consume latency p50/p99;
- pipeline throughput: candles per second from the first candle on the bus to the last message
  of the run (snapshot, signal, order, rejection or report), once every queue is empty and no
  order or reservation is open. The replay holds back while any agent queue holds MAX_BACKLOG
  messages, so the rate is what the pipeline sustains; the depth samples of the first and the
  second half of the run show whether the backlog stayed bounded;
- candle-to-execution-report latency p50/p99: for every order, from its candle arriving on the
  bus to the order's first execution report arriving, both seen by one subscriber (a replayed
  candle's produced_at is the historical close of its bar, so it cannot be a start time). Each
  report is traced back through causation ids (report -> order -> signal -> snapshot -> candle)
  and must carry its candle's correlation id;
- the ratios of both against the baseline.

Usage: scripts/bench_pipeline.py [--candles 400] [--offset 4000] [--hop-messages 2000]
Needs RABBITMQ_URL, DATABASE_URL and INFLUXDB_URL (scripts/test exports them; or, in bash,
`source scripts/lib/services.sh; ensure_services; export RABBITMQ_URL DATABASE_URL INFLUXDB_URL`).
Every run uses its own exchange, queues, Postgres and InfluxDB database, removed at the end even
on failure; agent logs go to a temporary directory, kept and tailed when the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple
from uuid import UUID

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.monitor.bus_checks import declared  # noqa: E402
from agents.run.plan import ensure_postgres_database, with_database  # noqa: E402
from agents.runtime.supervisor import child_preexec, stop_processes  # noqa: E402
from infra.bus import Topology, system_topology  # noqa: E402
from infra.bus.topology import declare_topology, delete_topology, server_supports_quorum  # noqa: E402
from infra.db import create_engine, upgrade_head  # noqa: E402
from infra.settings import Settings  # noqa: E402
from protocol import (  # noqa: E402
    Candle,
    ExecutionReport,
    IndicatorSnapshot,
    Message,
    OrderRequest,
    OrderStatus,
    RiskRejection,
    Signal,
    decode_any,
    topics,
)

CONSUMERS = ("technical_analysis", "strategy", "risk_manager", "execution")
COLLECTOR = "data_collection"
# What the run's own subscriber sees: every step of a candle's chain, not heartbeats or metrics
# (those keep coming after the work is done and would stretch the measured time).
WATCHED = (topics.ALL_CANDLES, topics.ALL_INDICATORS, topics.ALL_SIGNALS, topics.ALL_ORDERS,
           topics.ALL_REJECTIONS, topics.ALL_EXECUTION_REPORTS)
# The message type each chain step is caused by (its causation_id is that message's id).
PARENT = {IndicatorSnapshot: Candle, Signal: IndicatorSnapshot, OrderRequest: Signal,
          RiskRejection: Signal, ExecutionReport: OrderRequest}
# A report's latency split at each arrival on the bus; a stage is the named agent's queue wait
# plus its work (the agent consuming the earlier message and publishing the later one).
STAGES = ("technical_analysis", "strategy", "risk_manager", "execution")
POLL_SECONDS = 0.5
QUIET_POLLS = 5  # settled: nothing moved for this many polls with every queue empty
PROGRESS_SECONDS = 5.0
ATTACH_SECONDS = 120.0  # starting four agents takes seconds; minutes means one is stuck
TERMINAL = [status.value for status in OrderStatus if status.is_terminal]


class BenchError(Exception):
    """The benchmark could not produce honest figures; the message says why."""


# --- pure helpers ---------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of a non-empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Half:
    mean: float
    deepest: int


@dataclass(frozen=True)
class BacklogTrend:
    """Agent-queue depth over the first and the second half of the run (by time)."""

    first: Half
    second: Half
    max_backlog: int

    @property
    def bounded(self) -> bool:
        """No growth: the second half's mean depth is at most a quarter of MAX_BACKLOG (and at
        least one message) above the first half's. Means, not maxima: one signal-rich candle
        (five strategies) briefly deepens the signals queue by several messages, which says
        nothing about a trend; nor does a mean one message deeper in lock-step (MAX_BACKLOG 1)."""
        return self.second.mean - self.first.mean <= self.tolerance

    @property
    def tolerance(self) -> float:
        return max(self.max_backlog / 4, 1.0)


def backlog_trend(samples: list[tuple[float, int]], max_backlog: int) -> BacklogTrend:
    """Split (time, depth) samples at the middle of their time span and summarise each half."""
    if not samples:
        raise ValueError("no depth samples")
    middle = (samples[0][0] + samples[-1][0]) / 2
    halves = ([d for t, d in samples if t <= middle], [d for t, d in samples if t > middle])
    summary = [Half(statistics.fmean(h), max(h)) if h else Half(0.0, 0) for h in halves]
    return BacklogTrend(summary[0], summary[1], max_backlog)


class Seen(NamedTuple):
    kind: type[Message]
    correlation: UUID
    causation: UUID | None
    at: float


@dataclass
class Chain:
    """What one subscriber on the run's exchange saw, and when (time.monotonic()).

    Every message of a candle's chain carries the candle's id as correlation id and its parent's
    message id as causation id. Each message is checked against the parent it names: seen
    before, of the expected type, with the same correlation id. A report that passes traces back
    to its candle; the first report of each order gives one latency sample, split by stage.
    """

    seen: dict[UUID, Seen] = field(default_factory=dict)
    first_report: set[str] = field(default_factory=set)  # client order ids with a latency sample
    latencies: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in STAGES})
    distinct: Counter[str] = field(default_factory=Counter)
    breaks: list[str] = field(default_factory=list)
    first_candle: float | None = None
    last_event: float = 0.0

    @property
    def candles(self) -> int:
        return self.distinct[Candle.__name__]

    def record(self, message: Message, at: float) -> None:
        if message.message_id in self.seen:
            return  # a redelivered duplicate: the first arrival counts
        self.seen[message.message_id] = Seen(type(message), message.correlation_id, message.causation_id, at)
        self.distinct[type(message).__name__] += 1
        self.last_event = at
        if isinstance(message, Candle):
            self.first_candle = self.first_candle if self.first_candle is not None else at
        elif self._linked(message) and isinstance(message, ExecutionReport):
            if message.client_order_id not in self.first_report:
                self.first_report.add(message.client_order_id)
                self._sample(message.message_id)

    def _sample(self, report_id: UUID) -> None:
        """Arrival times up the chain: report, order, signal, snapshot, candle."""
        times = [self.seen[report_id].at]
        step = self.seen[report_id]
        while step.causation is not None:
            step = self.seen[step.causation]
            times.append(step.at)
        times.reverse()
        self.latencies.append(times[-1] - times[0])
        for name, before, after in zip(STAGES, times[:-1], times[1:], strict=True):
            self.stages[name].append(after - before)

    def _linked(self, message: Message) -> bool:
        expected = PARENT.get(type(message))
        parent = self.seen.get(message.causation_id) if message.causation_id else None
        if expected is None or (parent is not None and parent.kind is expected
                                and parent.correlation == message.correlation_id):
            return True
        found = "nothing seen" if parent is None else f"{parent.kind.__name__} of chain {parent.correlation}"
        self.breaks.append(f"{type(message).__name__} {message.message_id} (chain {message.correlation_id}): "
                           f"caused by {message.causation_id}, expected a {expected.__name__} of the same "
                           f"chain, found {found}")
        return False


# --- baseline ---------------------------------------------------------------------------------
async def single_hop(url: str, count: int) -> tuple[float, list[float]]:
    """Messages/s and latencies (s) of publish-with-confirm -> consume -> ack, one at a time."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"bench.hop.{uuid.uuid4().hex[:8]}", durable=True, auto_delete=True)
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with message.process():
                latencies.append(time.perf_counter() - float(message.body))
                if len(latencies) == count:
                    done.set()

        await queue.consume(on_message)
        started = time.perf_counter()
        for _ in range(count):
            body = str(time.perf_counter()).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
            )
        try:
            await asyncio.wait_for(done.wait(), 120)
        except TimeoutError:
            raise BenchError(f"single hop: {len(latencies)} of {count} messages consumed within 120 s") from None
        return count / (time.perf_counter() - started), latencies


# --- the run's pieces -------------------------------------------------------------------------
@dataclass(frozen=True)
class Urls:
    rabbitmq: str
    database_server: str
    influx: str


class Agents:
    """The agent processes of one run, each writing to its own log file."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []

    def start(self, agent: str) -> None:
        log = open(self.logs / f"{agent}.log", "wb")  # noqa: SIM115  (closed in stop())
        self._files.append(log)
        self.processes[agent] = subprocess.Popen(
            [sys.executable, "-m", f"agents.{agent}"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(),  # an interrupted benchmark leaves no agent behind
        )

    def exit_code(self, agent: str) -> int | None:
        return self.processes[agent].poll()

    def check_alive(self) -> None:
        """Raise when a consumer exited, or the replay exited with an error."""
        for agent, process in self.processes.items():
            code = process.poll()
            if code is not None and (agent != COLLECTOR or code != 0):
                raise BenchError(f"agent {agent} exited with code {code}")

    def states(self) -> dict[str, str]:
        return {agent: "running" if p.poll() is None else f"exited {p.poll()}" for agent, p in self.processes.items()}

    def tails(self, states: dict[str, str], lines: int = 6, problems: int = 10) -> str:
        """Per agent: its last warnings, errors and unstructured output (a traceback), then its last lines."""
        parts = []
        for agent, state in states.items():
            path = self.logs / f"{agent}.log"
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            noted = [line for line in text if not line.startswith("{") or '"level": "warning"' in line
                     or '"level": "error"' in line or '"level": "critical"' in line][-problems:]
            parts.append(f"--- {agent} ({state} at the failure): {len(noted)} last problems, then the last "
                         f"{lines} lines\n" + "\n".join(line[:300] for line in [*noted, "...", *text[-lines:]]))
        return "\n".join(parts)

    def stop(self) -> None:
        stop_processes(self.processes.values())
        for log in self._files:
            log.close()


class Probe:
    """Ready messages and consumers of queues by passive declare (the reality check's `declared`).

    Over a plain, not a robust, connection: a robust channel caches a passively declared queue
    by name and hands back its first answer forever (0 consumers, for a probe started early).
    """

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._channel: AbstractChannel | None = None

    async def declared(self, queue: str) -> tuple[int, int]:
        # A failed passive declare closes its channel: open a new one rather than fail every call after.
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        found = await declared(self._channel, queue)
        if found is None:
            raise BenchError(f"queue {queue} does not exist (declared at start: was it deleted?)")
        return found

    async def depths(self, queues: list[str]) -> dict[str, int]:
        return {queue: (await self.declared(queue))[0] for queue in queues}


async def ledger_open(engine: AsyncEngine) -> tuple[int, int, int]:
    """(risk decisions, orders not terminal, reservations still held) in the run's database."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT (SELECT count(*) FROM risk_decisions), "
            "(SELECT count(*) FROM orders WHERE NOT (status = ANY(:t))), "
            "(SELECT count(*) FROM reservations WHERE status IN ('HELD', 'PARTIALLY_SETTLED'))"
        ), {"t": TERMINAL})).one()
    return int(row[0]), int(row[1]), int(row[2])


def agent_env(urls: Urls, name: str, database_url: str, args: argparse.Namespace) -> dict[str, str]:
    """The system tests' settings (paper account, a per-trade cap that binds, one BTC series)
    with this run's names, slice and backpressure."""
    inherited = {k: v for k, v in os.environ.items() if k != "REPLAY_FILE"}  # the bundled real data
    return {
        **inherited,
        "RABBITMQ_URL": urls.rabbitmq, "DATABASE_URL": database_url, "INFLUXDB_URL": urls.influx,
        "INFLUXDB_DATABASE": name, "BUS_EXCHANGE": name,
        "DATA_SOURCE": "replay", "TRADING_MODE": "paper",
        "SYMBOLS": "BTC/USDT", "TIMEFRAME": "15m", "EXCHANGE": "binance",
        "REPLAY_OFFSET": str(args.offset), "REPLAY_LIMIT": str(args.candles),
        "REPLAY_SPEED": args.replay_speed, "REPLAY_EXIT_ON_END": "true",
        "INGEST_BATCH_SIZE": str(args.batch_size), "MAX_BACKLOG": str(args.max_backlog),
        "PAPER_BALANCES": "USDT:10000", "RISK_MAX_TRADE_NOTIONAL": "500", "RISK_SETTLE_WAIT": "60",
        "HEARTBEAT_INTERVAL": "2", "LOG_LEVEL": args.log_level,
    }


async def watch(channel: AbstractChannel, exchange: str, chain: Chain) -> None:
    """Consume every chain step of the run into ``chain``, timestamped on arrival."""
    queue = await channel.declare_queue("", exclusive=True)
    for key in WATCHED:
        await queue.bind(exchange, key)

    async def on_message(message: AbstractIncomingMessage) -> None:
        at = time.monotonic()
        async with message.process():
            chain.record(decode_any(message.body), at)

    await queue.consume(on_message)


# --- the run ----------------------------------------------------------------------------------
@dataclass
class PipelineResult:
    candles: int
    elapsed: float
    trend: BacklogTrend
    deepest_queue: tuple[str, int]
    chain: Chain
    decisions: int


class Run:
    """One isolated deployment: its exchange, databases, agents and the measurements."""

    def __init__(self, urls: Urls, args: argparse.Namespace) -> None:
        self.urls = urls
        self.args = args
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self.topology: Topology = system_topology(self.name)
        self.database_url = with_database(urls.database_server, self.name)
        self.logs = Path(tempfile.mkdtemp(prefix=f"{self.name}_logs_"))
        self.agents = Agents(self.logs, agent_env(urls, self.name, self.database_url, args))
        self.queues = [spec.name for spec in self.topology.queues if spec.consumer in CONSUMERS]
        self.chain = Chain()
        self.deadline = time.monotonic() + args.timeout
        self.started = time.monotonic()

    def _check_time(self, doing: str, status: str, deadline: float | None = None) -> None:
        if time.monotonic() > (deadline or self.deadline):
            limit = (deadline or self.deadline) - self.started
            raise BenchError(f"time limit of {limit:.0f} s reached while {doing}; {status}")

    async def measure(self) -> PipelineResult:
        await ensure_postgres_database(self.database_url)
        await upgrade_head(self.database_url)
        engine = create_engine(self.database_url)
        connection = await aio_pika.connect_robust(self.urls.rabbitmq)
        probe_connection = await aio_pika.connect(self.urls.rabbitmq)
        try:
            channel = await connection.channel()
            # Declared as the agents declare it, so the subscriber and the probe see every queue
            # from the start (a passive declare of a missing queue would close the channel).
            quorum = Settings().bus_quorum_queues
            await declare_topology(channel, self.topology,
                                   quorum=server_supports_quorum(connection) if quorum is None else quorum)
            await watch(channel, self.name, self.chain)
            probe = Probe(probe_connection)
            await self._start_consumers(probe)
            self.agents.start(COLLECTOR)
            return await self._drive(probe, engine)
        finally:
            await probe_connection.close()
            await connection.close()
            await engine.dispose()

    async def _start_consumers(self, probe: Probe) -> None:
        for agent in CONSUMERS:
            self.agents.start(agent)
        deadline = min(self.deadline, time.monotonic() + ATTACH_SECONDS)
        while True:
            self.agents.check_alive()
            missing = [q for q in self.queues if (await probe.declared(q))[1] == 0]
            if not missing:
                break
            self._check_time("waiting for the agents to attach", f"no consumer yet on {missing}", deadline)
            await asyncio.sleep(POLL_SECONDS)
        print(f"          consumers attached after {time.monotonic() - self.started:.1f} s; replaying", flush=True)

    async def _drive(self, probe: Probe, engine: AsyncEngine) -> PipelineResult:
        samples: list[tuple[float, int]] = []
        deepest: tuple[str, int] = ("", 0)
        last: tuple[Any, ...] | None = None
        quiet, next_progress = 0, time.monotonic() + PROGRESS_SECONDS
        while quiet < QUIET_POLLS:
            self.agents.check_alive()
            depths = await probe.depths(self.queues)
            now, depth = time.monotonic(), max(depths.values())
            if self.chain.first_candle is not None:
                samples.append((now, depth))
            worst = max(depths.items(), key=lambda item: item[1])
            deepest = worst if worst[1] > deepest[1] else deepest
            decisions, open_orders, held = await ledger_open(engine)
            state = (sum(self.chain.distinct.values()), decisions)
            idle = self.agents.exit_code(COLLECTOR) == 0 and depth == 0 and open_orders == 0 and held == 0
            quiet = quiet + 1 if idle and state == last else 0
            last = state
            status = self._status(depth, deepest[1], open_orders)
            self._check_time("replaying", status)
            if now >= next_progress:
                print(f"          {status}", flush=True)
                next_progress = now + PROGRESS_SECONDS
            await asyncio.sleep(POLL_SECONDS)
        return self._result(samples, deepest, decisions)

    def _status(self, depth: int, deepest: int, open_orders: int) -> str:
        seen = self.chain.distinct
        replay = "replay done" if self.agents.exit_code(COLLECTOR) == 0 else "replaying"
        return (f"[{time.monotonic() - self.started:6.1f} s] {replay}: candles {seen['Candle']}/{self.args.candles}, "
                f"snapshots {seen['IndicatorSnapshot']}, signals {seen['Signal']}, orders {seen['OrderRequest']} "
                f"({open_orders} open), reports {seen['ExecutionReport']}; agent queue depth {depth} "
                f"(deepest {deepest})")

    def _result(self, samples: list[tuple[float, int]], deepest: tuple[str, int], decisions: int) -> PipelineResult:
        chain = self.chain
        if chain.first_candle is None or not samples:
            raise BenchError("the replay published no candle")
        # The quiet polls after the last message only confirm the end; they are not the run.
        samples = [sample for sample in samples if sample[0] <= chain.last_event] or samples[:1]
        return PipelineResult(candles=chain.candles, elapsed=chain.last_event - chain.first_candle,
                              trend=backlog_trend(samples, self.args.max_backlog), deepest_queue=deepest, chain=chain,
                              decisions=decisions)

    async def cleanup(self, failed: bool) -> None:
        """Stop the agents, remove the exchange, queues and both databases; each step on its own."""
        states = self.agents.states()
        self.agents.stop()
        if failed:
            print(f"agent logs kept in {self.logs}\n{self.agents.tails(states)}", file=sys.stderr)
        steps = (("bus topology", self._delete_topology), ("Postgres database", self._drop_postgres),
                 ("InfluxDB database", self._drop_influx))
        for what, step in steps:
            try:
                await step()
            except Exception as exc:  # one failed step must not leave the others undone
                print(f"cleanup: {what} {self.name} not removed: {exc!r}", file=sys.stderr)
        if not failed:
            shutil.rmtree(self.logs, ignore_errors=True)

    async def _delete_topology(self) -> None:
        connection = await aio_pika.connect(self.urls.rabbitmq)
        async with connection:
            await delete_topology(await connection.channel(), self.topology)

    async def _drop_postgres(self) -> None:
        admin_dsn = with_database(self.urls.database_server, "postgres").replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def _drop_influx(self) -> None:
        async with httpx.AsyncClient(base_url=self.urls.influx, timeout=10) as client:
            response = await client.post("/query", data={"q": f'DROP DATABASE "{self.name}"'})
            response.raise_for_status()


async def pipeline(urls: Urls, args: argparse.Namespace, run: Run | None = None) -> PipelineResult:
    """Measure one run (``run``, or a Run of ``args``), then remove everything it made."""
    run = run or Run(urls, args)
    print(f"pipeline  run {run.name}: {args.candles} candles from offset {args.offset}, batches of "
          f"{args.batch_size}, MAX_BACKLOG {args.max_backlog}, time limit {args.timeout:.0f} s", flush=True)
    failed = True
    try:
        result = await run.measure()
        failed = False
        return result
    finally:
        await run.cleanup(failed)


# --- report -----------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def report(args: argparse.Namespace, hop_rate: float, hop_latency: list[float], result: PipelineResult) -> int:
    chain, trend = result.chain, result.trend
    rate = result.candles / result.elapsed
    seen = chain.distinct
    print(f"throughput {rate:,.1f} candles/s: {result.candles} candles from the first on the bus to the last "
          f"message of the run in {result.elapsed:.1f} s")
    print(f"backlog    deepest agent queue {result.deepest_queue[1]} ({result.deepest_queue[0]}); depth mean/max "
          f"first half {trend.first.mean:.1f}/{trend.first.deepest}, second half {trend.second.mean:.1f}/"
          f"{trend.second.deepest}: " + ("bounded, no growth" if trend.bounded else "GREW")
          + f" (second-half mean within max(MAX_BACKLOG/4, 1) = {trend.tolerance:g} of the first's)")
    print(f"trading    signals {seen['Signal']} (risk decisions {result.decisions}), rejections "
          f"{seen['RiskRejection']}, orders {seen['OrderRequest']}, execution reports {seen['ExecutionReport']}")
    code = 0
    if result.candles != args.candles:
        print(f"WARNING    {result.candles} candles seen, {args.candles} asked for (is the data shorter?)")
        code = 1
    if result.decisions != seen["Signal"]:
        print(f"WARNING    {seen['Signal']} signals but {result.decisions} risk decisions: every signal should "
              f"have exactly one")
        code = 1
    if chain.breaks:
        print(f"CHAIN      {len(chain.breaks)} messages do not trace back to their candle, e.g.:")
        for line in chain.breaks[:3]:
            print(f"           {line}")
        code = 1
    elif chain.latencies:
        print(f"chain      every report traced to its candle: report -> order -> signal -> snapshot -> candle, "
              f"one correlation id")
    if not chain.latencies:
        print("latency    no execution report: no strategy traded in this slice; try another --offset")
        return 1
    p50, p99 = percentile(chain.latencies, 0.5), percentile(chain.latencies, 0.99)
    hop_p50, hop_p99 = percentile(hop_latency, 0.5), percentile(hop_latency, 0.99)
    print(f"latency    at that rate, queue waits included: candle on the bus -> its order's first execution "
          f"report, {len(chain.latencies)} orders: "
          f"p50 {ms(p50)}, p99 {ms(p99)}" + (f" (only {len(chain.latencies)} samples: p99 is near the maximum)"
                                              if len(chain.latencies) < 100 else ""))
    print("by stage   p50 queue wait + work: " + ", ".join(
        f"{name} {ms(percentile(values, 0.5))}" for name, values in chain.stages.items()))
    print(f"ratios     throughput pipeline/hop {rate / hop_rate:.4f} (candles/s over messages/s); latency "
          f"p50 {p50 / hop_p50:,.0f}x, p99 {p99 / hop_p99:,.0f}x the single hop's")
    return code


def parse_args() -> argparse.Namespace:
    return run_arguments(argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])).parse_args()


def run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a run (shared with bench_scale.py)."""
    parser.add_argument("--candles", type=int, default=400, help="candles to replay")
    # From 4000 on every default strategy trades (the slice the system tests use).
    parser.add_argument("--offset", type=int, default=4000, help="candles of the bundled BTC data skipped")
    parser.add_argument("--batch-size", type=int, default=10, help="INGEST_BATCH_SIZE of the replay")
    parser.add_argument("--max-backlog", type=int, default=20, help="MAX_BACKLOG: agent queue depth the replay waits at")
    parser.add_argument("--replay-speed", default="max",
                        help="REPLAY_SPEED: 'max' (saturated) or a multiple of real time (900: one 15m candle per second)")
    parser.add_argument("--hop-messages", type=int, default=2000, help="messages of the single-hop baseline")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the pipeline part may take")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the agents (INFO is their default)")
    return parser


def urls_from_env() -> Urls:
    return Urls(
        rabbitmq=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        database_server=os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        influx=os.environ.get("INFLUXDB_URL", "http://127.0.0.1:8086"),
    )


async def main() -> int:
    args = parse_args()
    urls = urls_from_env()
    print(f"baseline  raw aio-pika single hop, {args.hop_messages} messages ...", flush=True)
    hop_rate, hop_latency = await single_hop(urls.rabbitmq, args.hop_messages)
    print(f"baseline  (persistent, confirmed, one at a time): {hop_rate:,.0f} msg/s, latency "
          f"p50 {ms(percentile(hop_latency, 0.5))}, p99 {ms(percentile(hop_latency, 0.99))}", flush=True)
    try:
        result = await pipeline(urls, args)
    except BenchError as exc:
        print(f"FAILED    {exc}", file=sys.stderr)
        return 1
    return report(args, hop_rate, hop_latency, result)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

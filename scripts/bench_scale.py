#!/usr/bin/env python3
"""Scale benchmark (issue 19): the figures of "Fast", in one run, next to a raw hop of that run.

Prints, in this order:
- baseline: the raw aio-pika single hop (bench_pipeline.single_hop), messages/s and latency;
- reservations: risk reservations per second with ``--concurrency`` (200) approvals in flight at
  once against one balance on real Postgres, through ``Ledger.approve`` (concurrent approvals
  share a transaction) and, as the in-run baseline, one transaction per approval (the same
  ``reservations.approve``); each followed by the over-reservation check: exactly
  floor(balance / amount) approvals reserved, ``reserved`` equal to the held reservations' sum,
  ``available + reserved`` equal to the seed, nothing negative; the same through
  ``Ledger.approve`` with a BUY's account check (decision 0029); and lone approvals (nothing
  else in flight), with and without the account check alternating, p50/p99;
- saturated throughput, one instance per role: bench_pipeline's run (replay at max speed,
  five strategies, one symbol);
- saturated throughput with several instances per role (two symbols on partitioned queues,
  against one instance per role on the same two symbols), and the failover time when the active
  instances are SIGKILLed (scripts/bench_instances.py): measured only where the build has
  partitioned queues (BUS_PARTITIONS, decision 0025); otherwise printed as "not measured" with
  the reason;
- paced latency: one candle per second (REPLAY_SPEED=900 on 15-minute candles, batches of one,
  so nothing queues), candle on the bus to its order's first execution report, p50/p99 and by
  stage;
- one JSON line with every figure (null where not measured).

Usage: scripts/bench_scale.py [--candles 400] [--paced-candles 120] [--concurrency 200]
Needs RABBITMQ_URL, DATABASE_URL and INFLUXDB_URL (see bench_pipeline.py); every part uses its
own databases and exchange, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pipeline import (  # noqa: E402
    BenchError,
    PipelineResult,
    Urls,
    ms,
    percentile,
    pipeline,
    run_arguments,
    single_hop,
    urls_from_env,
)

from agents.run.plan import ensure_postgres_database, with_database  # noqa: E402
from infra.db import create_engine, session_factory, upgrade_head  # noqa: E402
from agents.risk_manager.account_check import AccountLimits  # noqa: E402
from agents.risk_manager.rules import RiskLimits, RiskSnapshot  # noqa: E402
from infra.db.ledger import (  # noqa: E402
    ApproveStatus,
    DecisionKind,
    DecisionRecord,
    Ledger,
    NewReservation,
    ReservationStatus,
)
from infra.db.ledger import reservations as reservation_ops  # noqa: E402
from protocol import Side, TradingState, client_order_id_for  # noqa: E402

SEED = Decimal("100000")
AMOUNT = Decimal("7.01")
CONSUMER = "bench.reservations"
PACED_SPEED = "900"  # 15-minute candles at 900x real time: one candle per second


# --- reservations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReservationFigures:
    per_second: float
    requests: int
    reserved: int
    expected: int
    over_reserved: bool
    detail: str


def _request(index: int) -> tuple[NewReservation, DecisionRecord]:
    signal_id = uuid.uuid4()
    item = NewReservation(
        client_order_id=client_order_id_for(signal_id), signal_id=signal_id, strategy_id=f"bench-{index % 5}",
        exchange="paper", symbol="BTC/USDT", side=Side.BUY, asset="USDT", amount=AMOUNT, quantity=Decimal("0.0001"),
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    record = DecisionRecord(signal_id=signal_id, strategy_id=item.strategy_id, symbol=item.symbol, side=item.side.value,
                            decision=DecisionKind.APPROVED, detail="bench", inputs={"bench": index})
    return item, record


async def _drop(server: str, name: str) -> None:
    admin = await asyncpg.connect(with_database(server, "postgres").replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _account_check(item: NewReservation, seed: Decimal) -> AccountLimits:
    """The risk manager's account check (decision 0029) with limits this run never reaches
    (every approval decided again under the account lock, none refused by it)."""
    now = datetime.now(UTC)
    snap = RiskSnapshot(now=now, trading_state=TradingState.ACTIVE, emergency_stop=False, reference_price=AMOUNT / item.quantity,
                        price_time=now, available_quote=seed, equity=seed)
    limits = RiskLimits(max_open_positions=10, max_symbol_exposure=Decimal(2), max_total_exposure=Decimal(2))
    return AccountLimits(snap, limits, AMOUNT, {"BTC": AMOUNT / item.quantity}, strategy_id=item.strategy_id,
                         exchange=item.exchange, symbol=item.symbol)


async def reservations(server: str, concurrency: int, rounds: int, mode: str) -> ReservationFigures:
    """``rounds`` waves of ``concurrency`` approvals in flight at once; the seed covers about
    three quarters of them, so the last wave also exercises refusals at the edge. ``mode``:
    "one" transaction each, "batched" (``Ledger.approve``), "checked" (``Ledger.approve`` with
    the account check of a BUY)."""
    name = f"bench_resv_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    await ensure_postgres_database(url)
    total = concurrency * rounds
    seed = (AMOUNT * total * 3 / 4).quantize(Decimal("0.01"))
    engine = create_engine(url, pool_size=20, max_overflow=0)
    try:
        await upgrade_head(url)
        sessions = session_factory(engine)
        ledger = Ledger(sessions)
        await ledger.ensure_initial_balances({"USDT": seed})

        async def one_transaction_each(item: NewReservation, record: DecisionRecord) -> ApproveStatus:
            async with sessions() as session, session.begin():
                return (await reservation_ops.approve(session, CONSUMER, item.signal_id, item, record)).status

        async def batched_approve(item: NewReservation, record: DecisionRecord) -> ApproveStatus:
            check = _account_check(item, seed) if mode == "checked" else None
            return (await ledger.approve(CONSUMER, item.signal_id, item, record, check)).status

        approve = one_transaction_each if mode == "one" else batched_approve
        statuses: list[ApproveStatus] = []
        started = time.perf_counter()
        for wave in range(rounds):
            requests = [_request(wave * concurrency + i) for i in range(concurrency)]
            statuses += await asyncio.gather(*(approve(item, record) for item, record in requests))
        elapsed = time.perf_counter() - started
        return await _check(ledger, engine, statuses, seed, total / elapsed)
    finally:
        await engine.dispose()
        await _drop(server, name)


async def _check(ledger: Ledger, engine: Any, statuses: list[ApproveStatus], seed: Decimal, rate: float) -> ReservationFigures:
    from sqlalchemy import text

    reserved = statuses.count(ApproveStatus.RESERVED)
    expected = int(seed // AMOUNT)
    balance = (await ledger.balances())["USDT"]
    async with engine.connect() as conn:
        held = (await conn.execute(text(
            "SELECT coalesce(sum(remaining), 0) FROM reservations WHERE status IN ('HELD', 'PARTIALLY_SETTLED')"
        ))).scalar_one()
    problems = []
    if reserved != expected:
        problems.append(f"{reserved} reserved, {expected} fit")
    if balance.reserved != held or balance.reserved != AMOUNT * reserved:
        problems.append(f"balance reserved {balance.reserved}, reservations hold {held}")
    if balance.available < 0 or balance.available + balance.reserved != seed:
        problems.append(f"available {balance.available} + reserved {balance.reserved} != seed {seed}")
    detail = "; ".join(problems) or (f"{reserved} of {len(statuses)} reserved = floor({seed} / {AMOUNT}); "
                                     f"reserved {balance.reserved} = the held reservations' sum; available "
                                     f"{balance.available}")
    return ReservationFigures(rate, len(statuses), reserved, expected, bool(problems), detail)


async def lone_approvals(server: str, count: int) -> tuple[list[float], list[float]]:
    """Seconds per lone ``Ledger.approve`` (nothing else in flight: the single-symbol path),
    without and with the account check, alternating (which goes first swaps each time) so both
    see the same load; each reservation released afterwards (untimed), so the book stays small."""
    name = f"bench_lone_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    await ensure_postgres_database(url)
    engine = create_engine(url, pool_size=2, max_overflow=0)
    plain: list[float] = []
    checked: list[float] = []
    try:
        await upgrade_head(url)
        ledger = Ledger(session_factory(engine))
        await ledger.ensure_initial_balances({"USDT": SEED})
        for index in range(count):
            for check in ((False, True) if index % 2 else (True, False)):
                item, record = _request(index)
                started = time.perf_counter()
                outcome = await ledger.approve(CONSUMER, item.signal_id, item, record,
                                               _account_check(item, SEED) if check else None)
                (checked if check else plain).append(time.perf_counter() - started)
                if outcome.status is not ApproveStatus.RESERVED:
                    raise BenchError(f"lone approval not reserved: {outcome.status}")
                await ledger.release(item.client_order_id, ReservationStatus.RELEASED)
        return plain, checked
    finally:
        await engine.dispose()
        await _drop(server, name)


async def reservation_figures(urls: Urls, args: argparse.Namespace, figures: dict[str, Any]) -> int:
    """Both ways of approving, each with its over-reservation check; 1 if any over-reserved."""
    code = 0
    modes = (("one transaction each", "one", "reservations_one_transaction_each"),
             ("Ledger.approve", "batched", "reservations"),
             ("Ledger.approve, account check", "checked", "reservations_account_check"))
    for label, mode, key in modes:
        found = await reservations(urls.database_server, args.concurrency, args.rounds, mode)
        figures[key] = {"per_s": round(found.per_second, 1), "requests": found.requests,
                        "concurrency": args.concurrency, "over_reservation": found.over_reserved}
        verdict = "OVER-RESERVED: " if found.over_reserved else "no over-reservation: "
        print(f"reservations {label}: {found.per_second:,.0f}/s ({found.requests} approvals, {args.concurrency} in "
              f"flight); {verdict}{found.detail}", flush=True)
        code |= int(found.over_reserved)
    base = figures["reservations_one_transaction_each"]["per_s"]
    print(f"             Ledger.approve / one transaction each: {figures['reservations']['per_s'] / base:.1f}x; "
          f"with the account check / without: "
          f"{figures['reservations_account_check']['per_s'] / figures['reservations']['per_s']:.2f}x")
    plain, checked = await lone_approvals(urls.database_server, args.lone)
    figures["lone_approval_ms"] = {
        label: {"p50": round(percentile(values, 0.5) * 1000, 2), "p99": round(percentile(values, 0.99) * 1000, 2)}
        for label, values in (("plain", plain), ("account_check", checked))
    }
    print(f"reservations lone Ledger.approve, {args.lone} each way alternating: p50 {ms(percentile(plain, 0.5))} "
          f"(p99 {ms(percentile(plain, 0.99))}) without the account check, {ms(percentile(checked, 0.5))} "
          f"(p99 {ms(percentile(checked, 0.99))}) with it", flush=True)
    return code


# --- pipeline runs --------------------------------------------------------------------------
def run_args(args: argparse.Namespace, *, candles: int, speed: str, batch_size: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "candles": candles, "replay_speed": speed, "batch_size": batch_size})


def multi_instance_support() -> str | None:
    """Why several instances per role cannot be measured in this build (None: they can)."""
    from infra.settings import Settings

    if "bus_partitions" not in Settings.model_fields:
        return "this build runs one instance per role: no partitioned queues (issue 19, 'Partitions and instances')"
    return None


async def several_instances(urls: Urls, args: argparse.Namespace, hop_rate: float, figures: dict[str, Any]) -> None:
    """Two symbols on partitioned queues: one instance per role, ``--instances`` per role, and
    a run where the active instances are SIGKILLed (the failover time)."""
    from bench_instances import PARTITIONS, SYMBOLS, instances_run

    base = run_args(args, candles=args.instance_candles, speed="max", batch_size=args.batch_size)
    rates = {}
    for count in (1, args.instances):
        found = (await instances_run(urls, base, count, None)).pipeline
        rates[count] = found.candles / found.elapsed
        print(f"saturated    {len(SYMBOLS)} symbols on {PARTITIONS} partitions, {count} instance(s) per role: "
              f"{rates[count]:,.1f} candles/s ({found.candles} candles in {found.elapsed:.1f} s); "
              f"pipeline/hop {rates[count] / hop_rate:.4f}", flush=True)
    figures["saturated_two_symbols_1_instance_candles_per_s"] = round(rates[1], 2)
    figures["saturated_several_instances_candles_per_s"] = round(rates[args.instances], 2)
    figures["several_instances"] = args.instances
    print(f"             {args.instances} instances / 1 instance per role: {rates[args.instances] / rates[1]:.2f}x "
          f"(every partition has one active consumer; instances started together split them where the "
          f"build supports it, decision 0025)")
    killed = await instances_run(urls, base, args.instances, args.kill_after)
    assert killed.failover is not None
    figures["failover_s"] = round(killed.failover, 2)
    print(f"failover     SIGKILL of the active instance of every consuming role after {args.kill_after} decisions: "
          f"the standbys moved the pipeline on {killed.failover:.2f} s later (risk decisions counting again)", flush=True)


@dataclass(frozen=True)
class Stages:
    p50: float
    p99: float
    samples: int
    by_stage: dict[str, float]


def stages(result: PipelineResult) -> Stages:
    chain = result.chain
    if not chain.latencies:
        raise BenchError("no execution report in the run: no strategy traded in this slice")
    return Stages(percentile(chain.latencies, 0.5), percentile(chain.latencies, 0.99), len(chain.latencies),
                  {name: percentile(values, 0.5) for name, values in chain.stages.items()})


# --- the run --------------------------------------------------------------------------------
async def main() -> int:
    args = parse_args()
    urls = urls_from_env()
    figures: dict[str, Any] = {}
    hop_rate, hop_latency = await single_hop(urls.rabbitmq, args.hop_messages)
    hop_p50 = percentile(hop_latency, 0.5)
    figures["hop"] = {"msg_per_s": round(hop_rate, 1), "p50_ms": round(hop_p50 * 1000, 3),
                      "p99_ms": round(percentile(hop_latency, 0.99) * 1000, 3)}
    print(f"baseline     raw aio-pika single hop (persistent, confirmed, one at a time): {hop_rate:,.0f} msg/s, "
          f"latency p50 {ms(hop_p50)}, p99 {ms(percentile(hop_latency, 0.99))}", flush=True)

    code = 0
    parts = set(args.parts.split(","))
    if "reservations" in parts:
        code |= await reservation_figures(urls, args, figures)
    if "saturated" in parts:
        try:
            saturated = await pipeline(urls, run_args(args, candles=args.candles, speed="max", batch_size=args.batch_size))
        except BenchError as exc:
            print(f"FAILED       saturated run: {exc}", file=sys.stderr)
            return 1
        rate = saturated.candles / saturated.elapsed
        figures["saturated_1_instance_candles_per_s"] = round(rate, 2)
        print(f"saturated    1 instance per role: {rate:,.1f} candles/s ({saturated.candles} candles, five strategies, "
              f"one symbol, in {saturated.elapsed:.1f} s); pipeline/hop {rate / hop_rate:.4f}", flush=True)
    if "instances" in parts:
        reason = multi_instance_support()
        figures["saturated_several_instances_candles_per_s"] = None
        figures["failover_s"] = None
        if reason is None:
            try:
                await several_instances(urls, args, hop_rate, figures)
            except BenchError as exc:
                print(f"FAILED       several instances: {exc}", file=sys.stderr)
                return 1
        else:
            print(f"saturated    several instances per role: not measured ({reason})")
            print(f"failover     kill of an active instance: not measured ({reason})", flush=True)
    if "paced" in parts:
        try:
            paced = await pipeline(urls, run_args(args, candles=args.paced_candles, speed=PACED_SPEED, batch_size=1))
            found = stages(paced)
        except BenchError as exc:
            print(f"FAILED       paced run: {exc}", file=sys.stderr)
            return 1
        figures["paced"] = {"p50_ms": round(found.p50 * 1000, 1), "p99_ms": round(found.p99 * 1000, 1),
                            "orders": found.samples,
                            "stage_p50_ms": {name: round(value * 1000, 1) for name, value in found.by_stage.items()}}
        print(f"paced        one candle per second, candle on the bus -> its order's first report, {found.samples} "
              f"orders: p50 {ms(found.p50)}, p99 {ms(found.p99)} ({found.p50 / hop_p50:,.0f}x / "
              f"{found.p99 / percentile(hop_latency, 0.99):,.0f}x the hop's)")
        print("by stage     p50 queue wait + work: " + ", ".join(f"{n} {ms(v)}" for n, v in found.by_stage.items()))
    print(json.dumps(figures, sort_keys=True))
    return code


def parse_args() -> argparse.Namespace:
    # The run options of bench_pipeline (--candles: of the saturated run; --replay-speed unused).
    parser = run_arguments(argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]))
    parser.add_argument("--paced-candles", type=int, default=120, help="candles of the paced run (one per second)")
    parser.add_argument("--instances", type=int, default=2, help="instances per role of the several-instances runs")
    parser.add_argument("--instance-candles", type=int, default=150, help="candles per symbol of those runs")
    parser.add_argument("--kill-after", type=int, default=15, help="risk decisions before the actives are killed")
    parser.add_argument("--concurrency", type=int, default=200, help="approvals in flight at once")
    parser.add_argument("--rounds", type=int, default=5, help="waves of --concurrency approvals")
    parser.add_argument("--lone", type=int, default=200, help="lone approvals each way (with/without the account check)")
    parser.add_argument("--parts", default="reservations,saturated,instances,paced",
                        help="comma-separated parts to run (all by default)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

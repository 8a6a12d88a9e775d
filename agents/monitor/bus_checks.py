"""Reality checks that need only the broker: heartbeats, queues and their consumers, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import ChannelClosed

from agents.monitor.probes import PROBE_TIMEOUT, RUN_HINT, error_text
from agents.monitor.report import Check, fail, ok, warn
from infra.bus import Topology, connect_plain, queue_counts
from infra.bus import headers as h
from infra.settings import redact_url
from protocol import Heartbeat, HealthState, topics
from protocol.codec import MessageDecodeError, decode

__all__ = ["EXPECTED_AGENTS", "bus_checks", "collect_heartbeats", "declared", "exchange_exists"]

EXPECTED_AGENTS = ("data_collection", "technical_analysis", "strategy", "risk_manager", "execution")
# Queues whose consumer is an operator tool (the run command's monitor), not one of the agents:
# nobody listening there is worth a warning, not a failure.
_OPTIONAL_CONSUMERS = frozenset({"monitor"})
_DEAD_LETTER_SAMPLE = 3


async def collect_heartbeats(
    connection: AbstractConnection, exchange: str, wait: float, expected: Collection[str]
) -> dict[str, Heartbeat]:
    """The newest heartbeat per agent heard within ``wait`` seconds (earlier if all have spoken).

    A private auto-delete queue is used so the check never takes heartbeats from the monitor queue.
    """
    channel = await connection.channel()
    newest: dict[str, Heartbeat] = {}
    try:
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        try:
            await queue.bind(exchange, routing_key=topics.ALL_HEARTBEATS)
        except ChannelClosed:  # the exchange does not exist: no agent ever started on it
            return newest
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not set(expected) <= newest.keys():
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            try:
                beat = decode(message.body, Heartbeat)
            except MessageDecodeError:
                continue
            newest[beat.agent] = beat
        return newest
    finally:
        if not channel.is_closed:
            await channel.close()


def heartbeat_checks(beats: dict[str, Heartbeat], expected: Collection[str], max_age: float) -> list[Check]:
    checks: list[Check] = []
    now = datetime.now(UTC)
    for agent in expected:
        beat = beats.get(agent)
        if beat is None:
            checks.append(fail("agents", f"{agent} heartbeat", "none", f"no heartbeat within {max_age:.0f}s"))
            continue
        age = (now - beat.produced_at).total_seconds()
        figure = f"{age:.1f}s ago, {beat.health.value}"
        problems = beat.detail.get("problems", "")
        if age > max_age:
            checks.append(fail("agents", f"{agent} heartbeat", figure, f"older than {max_age:.0f}s"))
        elif beat.health is not HealthState.HEALTHY:
            checks.append(warn("agents", f"{agent} heartbeat", figure, problems))
        else:
            checks.append(ok("agents", f"{agent} heartbeat", figure, f"consumed {beat.consumed}, published {beat.published}"))
    return checks


async def declared(channel: AbstractChannel, name: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of a queue by passive declare; None when it does not exist."""
    try:
        return await queue_counts(channel, name)
    except ChannelClosed:
        return None


async def _dead_letter_reasons(connection: AbstractConnection, name: str) -> list[str]:
    """Reasons of the first few dead letters, read without consuming them (got, then requeued)."""
    channel = await connection.channel()
    reasons: list[str] = []
    held: list[aio_pika.abc.AbstractIncomingMessage] = []
    try:
        queue = await channel.declare_queue(name, passive=True)
        for _ in range(_DEAD_LETTER_SAMPLE):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            headers = message.headers or {}
            reason = headers.get(h.ERROR) or headers.get(h.ERROR_KIND) or "no reason recorded"
            reasons.append(str(reason)[:200])
    finally:
        for message in held:
            await message.nack(requeue=True)
        if not channel.is_closed:
            await channel.close()
    return reasons


async def queue_checks(
    connection: AbstractConnection, topology: Topology, max_depth: int
) -> list[Check]:
    checks: list[Check] = []
    for spec in topology.queues:
        # A closed channel after a failed passive declare cannot be reused: one per queue pair.
        channel = await connection.channel()
        try:
            main = await declared(channel, spec.name)
        finally:
            if not channel.is_closed:
                await channel.close()
        if main is None:
            checks.append(fail("queues", spec.name, "missing", "queue not declared: has any agent started?"))
            continue
        depth, consumers = main
        figure = f"depth {depth}, consumers {consumers}"
        if consumers == 0 and spec.consumer not in _OPTIONAL_CONSUMERS:
            checks.append(fail("queues", spec.name, figure, f"no {spec.consumer} consumer"))
        elif depth > max_depth:
            checks.append(warn("queues", spec.name, figure, f"backlog above {max_depth}"))
        elif consumers == 0:
            checks.append(warn("queues", spec.name, figure, f"no {spec.consumer} attached (optional)"))
        else:
            checks.append(ok("queues", spec.name, figure))
        checks.append(await _dead_letter_check(connection, spec.dead_letter_queue))
    return checks


async def _dead_letter_check(connection: AbstractConnection, name: str) -> Check:
    channel = await connection.channel()
    try:
        found = await declared(channel, name)
    finally:
        if not channel.is_closed:
            await channel.close()
    if found is None:
        return fail("dead letters", name, "missing", "dead-letter queue not declared")
    count = found[0]
    if count == 0:
        return ok("dead letters", name, 0)
    reasons = await _dead_letter_reasons(connection, name)
    return fail("dead letters", name, count, " | ".join(reasons))


async def exchange_exists(connection: AbstractConnection, exchange: str) -> bool:
    """Passive declare on a channel of its own (a refusal closes the channel)."""
    channel = await connection.channel()
    try:
        await channel.declare_exchange(exchange, passive=True)
        return True
    except ChannelClosed:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def bus_checks(
    url: str,
    topology: Topology,
    *,
    heartbeat_wait: float,
    heartbeat_max_age: float,
    max_depth: int,
    expected_agents: Collection[str] = EXPECTED_AGENTS,
    connect_timeout: float = PROBE_TIMEOUT,
) -> list[Check]:
    """Every bus-side check; a broker that cannot be reached is itself a FAIL, not an exception.

    One plain (not robust) connection with a bounded connect: a robust one retries forever on a
    broker that accepts TCP but never completes the AMQP handshake. The caller bounds the rest."""
    hint = f"is RabbitMQ running at {redact_url(url)}? (RABBITMQ_URL)"
    try:
        connection = await connect_plain(url, connect_timeout, "reality-check")
    except TimeoutError:
        return [fail("broker", "connect", f"no answer within {connect_timeout:.0f}s",
                     f"the port accepts connections but AMQP never answers; {hint}")]
    except Exception as exc:  # any connection failure is the finding
        return [fail("broker", "connect", "unreachable", f"{error_text(exc)}; {hint}")]
    try:
        if not await exchange_exists(connection, topology.exchange):
            return [fail("bus", f"exchange {topology.exchange}", "missing",
                         f"no bus exchange `{topology.exchange}`: is the system running? {RUN_HINT}")]
        beats = await collect_heartbeats(connection, topology.exchange, heartbeat_wait, expected_agents)
        return [
            ok("bus", f"exchange {topology.exchange}", "declared"),
            *heartbeat_checks(beats, expected_agents, heartbeat_max_age),
            *await queue_checks(connection, topology, max_depth),
        ]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), connect_timeout)

"""Routes about the system: health probe, who am I, the run, agents (heartbeats), queues, dead
letters, strategies, and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, TypeVar

import typer
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from agents.api import models as m
from agents.api.app import STORE_TIMEOUT, Services
from agents.api.auth import read_role, stream_role
from agents.api.stream import EVENT_TYPES, sse_events
from agents.monitor.bus_checks import declared
from agents.ops.dead_letters import resolve_queue
from agents.strategy.config import DEFAULT_CONFIG_PATH, StrategyConfigError, load_strategy_config
from infra.bus import connect_plain, system_topology
from infra.bus.dead_letters import inspect_dead_letters
from infra.db.controls import read_pause
from infra.settings import redact_url
from infra.tokens import Role

router = APIRouter()
T = TypeVar("T")
Read = Annotated[Role, Depends(read_role)]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def bounded(awaitable: Awaitable[T], what: str, timeout: float = STORE_TIMEOUT) -> T:
    """Await a store or broker call within ``timeout``; 503 naming what did not answer."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} did not answer within {timeout:g}s") from None
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}") from None


@router.get("/health", response_model=m.Health, tags=["service"], summary="Health probe (no token)")
async def health(request: Request) -> m.Health:
    services = services_of(request)
    postgres = influx = False
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            postgres = True
    with contextlib.suppress(Exception):
        influx = await asyncio.wait_for(services.prices.ping(), 2)
    bus = services.bus is not None and services.bus.is_connected
    listening = services.listener.listening
    ok = postgres and influx and bus and listening
    return m.Health(status="ok" if ok else "degraded", bus=bus, postgres=postgres, influxdb=influx,
                    stream_listening=listening)


@router.get("/whoami", response_model=m.WhoAmI, tags=["service"])
async def whoami(role: Read) -> m.WhoAmI:
    return m.WhoAmI(role=role.value)


def _version() -> str:
    try:
        return version("tradebus")
    except PackageNotFoundError:
        return "unknown"


@router.get("/run", response_model=m.RunInfo, tags=["service"], summary="The run's identity and settings (no secrets)")
async def run_info(request: Request, _: Read) -> m.RunInfo:
    services = services_of(request)
    s = services.settings
    return m.RunInfo(
        environment=s.environment.value, trading_mode=s.trading_mode.value, data_source=s.data_source.value,
        exchange=s.exchange, symbols=list(s.symbols), timeframe=s.timeframe, bus_exchange=s.bus_exchange,
        database_url=redact_url(s.database_url.get_secret_value()), influxdb_url=redact_url(s.influxdb_url),
        influxdb_database=s.influxdb_database, replay_speed=s.replay_speed,
        api=m.ApiBinding(host=s.api_host, port=s.api_port, cors_origins=list(s.api_cors_origins)),
        started_at=services.started_at, version=_version(),
    )


@router.get("/agents", response_model=m.Agents, tags=["system"], summary="Agents and their health, from heartbeats")
async def agents(request: Request, _: Read) -> m.Agents:
    services = services_of(request)
    now = datetime.now(UTC)
    max_age = 3 * services.settings.heartbeat_interval + 5
    rows = []
    for name, (beat, heard_at) in sorted(services.listener.heartbeats.items()):
        age = (now - heard_at).total_seconds()
        rows.append(m.AgentHealth(
            agent=name, instance_id=beat.instance_id, health=beat.health.value,
            problems=str(beat.detail.get("problems", "")), last_seen=heard_at, age_seconds=round(age, 3),
            stale=age > max_age, uptime_seconds=beat.uptime_seconds, consumed=beat.consumed,
            published=beat.published, dead_lettered=beat.dead_lettered, errors=beat.errors,
        ))
    return m.Agents(agents=rows, heard_since=services.listener.started_at)


async def _queue_rows(services: Services) -> list[m.QueueInfo]:
    url = services.settings.rabbitmq_url.get_secret_value()
    connection = await connect_plain(url, STORE_TIMEOUT, "tradebus-api-queues")
    rows: list[m.QueueInfo] = []
    try:
        for spec in system_topology(services.settings.bus_exchange, services.settings.bus_partitions).queues:
            counts: list[tuple[int, int] | None] = []
            for name in (spec.name, spec.dead_letter_queue):
                # A failed passive declare closes its channel: one channel per queue.
                channel = await connection.channel()
                try:
                    counts.append(await declared(channel, name))
                finally:
                    if not channel.is_closed:
                        await channel.close()
            main, dlq = counts
            rows.append(m.QueueInfo(
                name=spec.name, consumer=spec.consumer, exists=main is not None,
                depth=main[0] if main else None, consumers=main[1] if main else None,
                dead_letters=dlq[0] if dlq else None,
            ))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 2)
    return rows


@router.get("/queues", response_model=m.Queues, tags=["system"], summary="Queue depths and consumers")
async def queues(request: Request, _: Read) -> m.Queues:
    services = services_of(request)
    return m.Queues(queues=await bounded(_queue_rows(services), "the broker (queue depths)", 3 * STORE_TIMEOUT))


@router.get("/dead-letters", response_model=m.DeadLetters, tags=["system"],
            summary="Dead letters per queue with their reasons (nothing is consumed)")
async def dead_letters(
    request: Request, _: Read,
    queue: Annotated[str | None, Query(max_length=200, description="one queue (full or short name)")] = None,
    show: Annotated[int, Query(ge=0, le=50)] = 5,
) -> m.DeadLetters:
    services = services_of(request)
    topology = system_topology(services.settings.bus_exchange, services.settings.bus_partitions)
    try:
        names = [resolve_queue(topology, queue)] if queue else [spec.name for spec in topology.queues]
    except typer.BadParameter as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.message)) from None
    url = services.settings.rabbitmq_url.get_secret_value()
    try:
        found = await bounded(inspect_dead_letters(url, names, show=show, timeout=STORE_TIMEOUT),
                              "the broker (dead letters)", STORE_TIMEOUT * (len(names) + 2))
    except HTTPException as exc:
        if "does not exist" in str(exc.detail):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{exc.detail}: has an agent declared the queues?") from None
        raise
    return m.DeadLetters(queues=[
        m.DeadLetterQueueOut(queue=q.queue, count=q.count, sample=[
            m.DeadLetterOut(message_id=d.message_id, schema_=d.schema, kind=d.kind, error=d.error,
                            attempts=d.attempts, dead_lettered_at=d.dead_lettered_at, routing_key=d.routing_key)
            for d in q.sample
        ]) for q in found
    ])


@router.get("/strategies", response_model=m.Strategies, tags=["strategies"], summary="Strategy instances and their configuration")
async def strategies(request: Request, _: Read) -> m.Strategies:
    s = services_of(request).settings
    path = s.strategy_config or DEFAULT_CONFIG_PATH
    try:
        # build=False: listing the configuration must not import the user's strategy files in
        # the console (their code runs in the strategy agent), nor hide every instance because
        # one file is broken.
        loaded = load_strategy_config(path, default_symbols=s.symbols, default_timeframe=s.timeframe, build=False)
    except (StrategyConfigError, OSError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"strategy config {path}: {exc}") from None
    paused = await bounded(_pauses(services_of(request), [c.strategy_id for c in loaded]), "Postgres (strategy pauses)")
    return m.Strategies(config_file=str(path), strategies=[
        m.StrategyOut(strategy_id=c.strategy_id, kind=c.kind, symbols=list(c.symbols), timeframe=c.timeframe,
                      params=dict(c.params), enabled=c.enabled, paused=paused.get(c.strategy_id, False))
        for c in loaded
    ])


async def _pauses(services: Services, strategy_ids: list[str]) -> dict[str, bool]:
    """Pause state persisted by the risk manager (a strategy never paused is not paused)."""
    async with services.sessions() as session:
        views = [await read_pause(session, strategy_id) for strategy_id in strategy_ids]
    return {view.strategy_id: view.paused for view in views if view is not None}


@router.get("/stream", tags=["stream"], summary="Live events (Server-Sent Events), resumable with Last-Event-ID",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}})
async def stream(
    request: Request,
    _: Annotated[Role, Depends(stream_role)],
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    last_event_id_query: Annotated[int | None, Query(alias="last_event_id", ge=0)] = None,
    types: Annotated[str | None, Query(max_length=300, description="comma-separated event types")] = None,
) -> StreamingResponse:
    wanted = None
    if types:
        wanted = {t.strip() for t in types.split(",") if t.strip()}
        unknown = wanted - set(EVENT_TYPES)
        if unknown:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                f"unknown event types {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}")
    resume = last_event_id if last_event_id is not None else last_event_id_query
    ring = services_of(request).ring
    return StreamingResponse(
        sse_events(ring, resume, wanted), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

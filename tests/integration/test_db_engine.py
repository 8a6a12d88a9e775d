"""infra.db.engine against a real Postgres: a pooled connection the server closed is replaced at
checkout without a round trip, and read sessions run each statement outside a transaction while
the ordinary sessions of the same pool keep theirs (decision 0030)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import create_engine, read_sessions, session_factory

pytestmark = pytest.mark.integration

_NOW_TWICE = "SELECT now()"


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    # One pooled connection: every session below gets the same one back.
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(postgres_url: str, engine: AsyncEngine) -> None:
    victim = await _backend_pid(engine)
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
        # The backend is gone once it left pg_stat_activity; asyncpg sees the socket close at
        # the next turn of the event loop.
        for _ in range(100):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", victim):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    # Without the checkout check the next statement fails (the pool would hand the dead one out).
    assert await _backend_pid(engine) != victim


async def _now_twice(sessions_factory: object) -> tuple[object, object]:
    async with sessions_factory() as session:  # type: ignore[operator]
        first = (await session.execute(text(_NOW_TWICE))).scalar_one()
        await asyncio.sleep(0.02)
        second = (await session.execute(text(_NOW_TWICE))).scalar_one()
    return first, second


async def test_read_sessions_run_outside_a_transaction_and_leave_the_pool_transactional(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    # now() is the transaction's start: equal within one transaction, later in the next one.
    first, second = await _now_twice(read_sessions(sessions))
    assert second > first  # type: ignore[operator]
    # The same pooled connection, back in an ordinary session: one transaction again.
    first, second = await _now_twice(sessions)
    assert second == first
    async with sessions.begin() as session:
        await session.execute(text("CREATE TEMP TABLE speed_t (x int)"))
        await session.execute(text("INSERT INTO speed_t VALUES (1)"))
    async with sessions() as session:
        await session.execute(text("INSERT INTO speed_t VALUES (2)"))
        await session.rollback()  # an ordinary session's write without a commit is undone
    async with read_sessions(sessions)() as session:
        assert (await session.execute(text("SELECT count(*) FROM speed_t"))).scalar_one() == 1

"""Postgres foundation: migrations, start-up check and exactly-once message effects (real Postgres)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.db import (
    Base,
    DatabaseNotMigrated,
    claim_message,
    create_engine,
    current_revision,
    ensure_migrated,
    head_revision,
    processed_once,
    session_factory,
    upgrade_head,
)

pytestmark = pytest.mark.integration

CONCURRENCY = 20


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database with scratch tables standing in for a consumer's effects."""
    await upgrade_head(postgres_url)
    # Pool large enough that every concurrent task really holds its own connection.
    engine = create_engine(postgres_url, pool_size=CONCURRENCY + 5, max_overflow=0)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effects (id serial PRIMARY KEY, consumer text, message_id uuid)"))
        await conn.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def record_effect(session: AsyncSession, consumer: str, message_id: uuid.UUID) -> None:
    await session.execute(
        text("INSERT INTO effects (consumer, message_id) VALUES (:c, :m)"), {"c": consumer, "m": message_id}
    )


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


# --- migrations ---------------------------------------------------------------------------


async def test_fresh_database_is_refused_with_redacted_url(postgres_url: str) -> None:
    url = make_url(postgres_url)
    if not url.password:
        # Trust auth ignores the password, so this only checks that it never reaches the message.
        url = url.set(password="s3cret")
    secret = url.password
    with pytest.raises(DatabaseNotMigrated) as excinfo:
        await ensure_migrated(url.render_as_string(hide_password=False))
    message = str(excinfo.value)
    assert str(secret) not in message
    assert ":***@" in message
    assert f"/{url.database}" in message
    assert "revision None" in message
    assert f"expected {head_revision()}" in message
    assert "`tradebus migrate`" in message
    assert await current_revision(postgres_url) is None


async def test_upgrade_head_is_repeatable_and_satisfies_the_check(postgres_url: str) -> None:
    assert await upgrade_head(postgres_url) == head_revision()
    assert await upgrade_head(postgres_url) == head_revision()
    assert await current_revision(postgres_url) == head_revision()
    await ensure_migrated(postgres_url)
    engine = create_engine(postgres_url)
    try:
        await ensure_migrated(engine)  # an engine works as well as a URL
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_serialise(postgres_url: str) -> None:
    revisions = await asyncio.gather(*(upgrade_head(postgres_url) for _ in range(3)))
    assert revisions == [head_revision()] * 3


async def test_database_newer_than_code_is_refused(postgres_url: str) -> None:
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(DatabaseNotMigrated, match="unknown to this code"):
            await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_models(postgres_url: str) -> None:
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


# --- idempotency --------------------------------------------------------------------------


async def test_second_delivery_is_skipped(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    message_id = uuid.uuid4()
    async with processed_once(sessions, "risk", message_id) as (session, first):
        assert first is True
        await record_effect(session, "risk", message_id)
    assert await scalar(engine, "SELECT count(*) FROM effects") == 1

    async with processed_once(sessions, "risk", message_id) as (session, first):
        assert first is False
    assert await scalar(engine, "SELECT count(*) FROM effects") == 1
    assert await scalar(engine, "SELECT count(*) FROM processed_messages") == 1


async def test_claim_message_in_callers_transaction(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    message_id = uuid.uuid4()
    async with sessions() as session:
        async with session.begin():
            assert await claim_message(session, "portfolio", message_id) is True
        async with session.begin():
            assert await claim_message(session, "portfolio", message_id) is False


async def test_failure_rolls_back_effect_and_claim(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    message_id = uuid.uuid4()
    with pytest.raises(RuntimeError, match="handler crashed"):
        async with processed_once(sessions, "executor", message_id) as (session, first):
            assert first is True
            await record_effect(session, "executor", message_id)
            raise RuntimeError("handler crashed")
    assert await scalar(engine, "SELECT count(*) FROM effects") == 0
    assert await scalar(engine, "SELECT count(*) FROM processed_messages") == 0

    for expected_first in (True, False):  # the redelivery succeeds once, a further one is skipped
        async with processed_once(sessions, "executor", message_id) as (session, first):
            assert first is expected_first
            if first:
                await record_effect(session, "executor", message_id)
    assert await scalar(engine, "SELECT count(*) FROM effects") == 1


async def test_concurrent_deliveries_apply_once(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    message_id = uuid.uuid4()
    start = asyncio.Barrier(CONCURRENCY)
    blocked: list[int] = []

    async def deliver() -> bool:
        await start.wait()
        async with processed_once(sessions, "portfolio", message_id) as (session, first):
            if first:
                await session.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
                # Hold the claim open until every other delivery is blocked behind it on a lock.
                for _ in range(200):
                    if await lock_waiters(engine) == CONCURRENCY - 1:
                        break
                    await asyncio.sleep(0.05)
                blocked.append(await lock_waiters(engine))
            return first

    results = await asyncio.gather(*(deliver() for _ in range(CONCURRENCY)))
    assert results.count(True) == 1
    assert blocked == [CONCURRENCY - 1]  # the others really were waiting, not merely late
    assert await scalar(engine, "SELECT n FROM counter WHERE id = 1") == 1


async def lock_waiters(engine: AsyncEngine) -> int:
    return int(
        await scalar(  # type: ignore[arg-type]
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


@pytest.mark.parametrize("holder_commits", [True, False])
async def test_competing_claim_waits_for_the_holder(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], holder_commits: bool
) -> None:
    message_id = uuid.uuid4()

    async def competitor() -> bool:
        async with processed_once(sessions, "risk", message_id) as (_, first):
            return first

    async with sessions() as holder:
        await holder.begin()
        assert await claim_message(holder, "risk", message_id) is True
        task = asyncio.create_task(competitor())
        for _ in range(100):  # the competitor must be blocked on a lock, not merely slow
            if await lock_waiters(engine) == 1:
                break
            await asyncio.sleep(0.05)
        assert await lock_waiters(engine) == 1
        assert not task.done()
        if holder_commits:
            await holder.commit()
        else:
            await holder.rollback()
    # Committed holder: the competitor sees the id. Rolled-back holder: the competitor takes over.
    assert await asyncio.wait_for(task, timeout=10) is (not holder_commits)


async def test_consumers_are_independent(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    message_id = uuid.uuid4()
    for _ in range(2):
        for consumer in ("risk", "portfolio"):
            async with processed_once(sessions, consumer, message_id) as (session, first):
                if first:
                    await record_effect(session, consumer, message_id)
    rows = await scalar(engine, "SELECT string_agg(consumer, ',' ORDER BY consumer) FROM effects")
    assert rows == "portfolio,risk"

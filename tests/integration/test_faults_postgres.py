"""infra.faults on the errors a real Postgres server raises, through asyncpg and through
SQLAlchemy (which wraps them): serialization failure, deadlock and an administrator terminating
the connection are transient; a constraint violation and bad SQL are permanent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import create_engine
from infra.faults import classify
from tests.support.failures import caught

pytestmark = pytest.mark.integration


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)"))
        await connection.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
    yield engine
    await engine.dispose()


async def test_a_serialization_failure_is_transient(engine: AsyncEngine) -> None:
    async def conflicting_update() -> None:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
            await second.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
            await first.execute(text("SELECT v FROM t WHERE id = 1"))
            await second.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))
            await second.commit()
            await first.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))

    exc = await caught(conflicting_update)
    assert isinstance(exc, sa_exc.DBAPIError)
    fault = classify(exc)
    assert fault.transient and fault.reason.startswith("Postgres serialization failure"), fault


async def test_a_deadlock_is_transient(postgres_url: str, engine: AsyncEngine) -> None:
    first, second = await asyncpg.connect(dsn(postgres_url)), await asyncpg.connect(dsn(postgres_url))
    try:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        await first.execute("UPDATE t SET v = 1 WHERE id = 1")
        await second.execute("UPDATE t SET v = 1 WHERE id = 2")
        results = await asyncio.gather(
            first.execute("UPDATE t SET v = 2 WHERE id = 2"),
            second.execute("UPDATE t SET v = 2 WHERE id = 1"),
            return_exceptions=True,
        )
        deadlocks = [r for r in results if isinstance(r, BaseException)]
        assert len(deadlocks) == 1 and isinstance(deadlocks[0], asyncpg.DeadlockDetectedError)
        fault = classify(deadlocks[0])
        assert fault.transient and fault.reason.startswith("Postgres deadlock"), fault
    finally:
        await first.close()
        await second.close()


async def test_a_connection_terminated_by_an_administrator_is_transient(postgres_url: str, engine: AsyncEngine) -> None:
    async def terminated_mid_transaction() -> None:
        async with engine.connect() as victim:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            admin = await asyncpg.connect(dsn(postgres_url))
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)  # our own test connection
            finally:
                await admin.close()
            await victim.execute(text("SELECT 1"))

    exc = await caught(terminated_mid_transaction)
    fault = classify(exc)
    assert fault.transient and fault.reason.startswith("Postgres "), (fault, repr(exc))


async def test_constraint_violations_and_bad_sql_are_permanent(engine: AsyncEngine) -> None:
    async def duplicate_key() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO t VALUES (1, 0)"))

    async def bad_sql() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT no_such_column FROM t"))

    duplicate, bad = await caught(duplicate_key), await caught(bad_sql)
    assert isinstance(duplicate, sa_exc.IntegrityError) and isinstance(bad, sa_exc.ProgrammingError)
    assert not classify(duplicate).transient
    assert not classify(bad).transient

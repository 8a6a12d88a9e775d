"""The duty lease (decision 0031) on the real Postgres: one holder per role and database, handed
over when the holder closes it or its session dies, independent per role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import create_engine
from infra.db.lease import DutyLease, lease_key
from tests.support.bus import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines: two processes of one role on one database."""
    first, second = create_engine(postgres_url), create_engine(postgres_url)
    yield first, second
    await first.dispose()
    await second.dispose()


async def _holders(engine: AsyncEngine, role: str) -> list[int]:
    """The backend pids holding ``role``'s lease, as the server sees them."""
    key = lease_key(role)
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = (:key & x'ffffffffffffffff'::bigint) "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"), {"key": key})
        return [row.pid for row in rows]


async def test_one_instance_holds_the_duties_until_it_lets_go(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    first, second = DutyLease(engines[0], "risk-manager"), DutyLease(engines[1], "risk-manager")
    assert await first.held() and first.holding
    assert not await second.held()
    assert await first.held(), "the holder keeps it round after round"
    assert not await second.held()
    assert len(await _holders(engines[0], "risk-manager")) == 1
    await first.close()
    assert not first.holding and await _holders(engines[0], "risk-manager") == []
    assert await second.held(), "the standby takes the duties once the holder let go"
    assert not await first.held()
    await second.close()


async def test_a_dead_holder_s_lease_passes_to_the_standby(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    first, second = DutyLease(engines[0], "execution"), DutyLease(engines[1], "execution")
    assert await first.held()
    [pid] = await _holders(engines[1], "execution")
    # The holder's session dies as it would with its process (SIGKILL) or a Postgres restart.
    async with engines[1].connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    # The backend exits (dropping its locks) a moment after it is signalled: the standby's
    # next rounds take the lease then, as its duty ticks would.
    assert await wait_until(second.held, 10), "the server did not drop the dead session's lock"
    assert not await first.held(), "the old holder notices the loss and does not run the duties"
    assert not first.holding
    await second.close()


async def test_roles_are_independent(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    risk, execution = DutyLease(engines[0], "risk-manager"), DutyLease(engines[1], "execution")
    assert await risk.held() and await execution.held()
    assert lease_key("risk-manager") != lease_key("execution")
    await risk.close()
    await execution.close()

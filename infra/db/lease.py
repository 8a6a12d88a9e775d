"""Which instance of a role runs its background duties: a Postgres advisory lock (decision 0031).

With several instances of an agent (decision 0025) the partitions have one active consumer
each, but the duties that are not messages — the risk manager's expiry sweeper and account
metrics, execution's reconciliation and balance-drift check — ran in every instance. They were
safe (atomic updates, deterministic ids) but wasteful, and against a real exchange every extra
instance multiplied the private API calls of reconciliation against the rate limits.

The lease is a session-level advisory lock named by the role, taken with
``pg_try_advisory_lock`` on one dedicated connection in autocommit mode (no transaction stays
open). Whoever holds it runs the duties. It is released when the holder closes it or when its
connection dies (process killed, Postgres restarted): the server drops a dead session's locks,
so a standby takes the duties over at its next tick. Advisory locks are per database, so every
deployment (and every test database) has its own.
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra.logging import get_logger

__all__ = ["DutyLease"]

_log = get_logger(component="duty-lease")
# A fixed high word keeps these keys apart from any other advisory lock an operator might use.
_NAMESPACE = 0x7472_6275  # "trbu"


def lease_key(role: str) -> int:
    """The advisory lock key of ``role``'s duties (a signed 64-bit integer, stable across runs)."""
    key = (_NAMESPACE << 32) | zlib.crc32(role.encode())
    return key - (1 << 64) if key >= 1 << 63 else key


class DutyLease:
    """``await lease.held()`` before each round of a duty: True in exactly one live instance."""

    def __init__(self, engine: AsyncEngine, role: str) -> None:
        self._engine, self.role, self._key = engine, role, lease_key(role)
        self._connection: AsyncConnection | None = None

    @property
    def holding(self) -> bool:
        return self._connection is not None

    async def held(self) -> bool:
        """Whether this instance runs the duties now: keeps the lease while its connection lives,
        tries to take it otherwise. A database error means "not now" (the next tick tries again),
        never an exception: an outage must not stop the agent."""
        if self._connection is not None:
            try:
                await self._connection.execute(text("SELECT 1"))
                return True
            except Exception as exc:  # the session (and the lock with it) is gone
                _log.warning("duty lease lost with its connection", role=self.role, error=repr(exc))
                await self._drop()
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            _log.warning("duty lease: database unreachable", role=self.role, error=repr(exc))
            return False
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            taken = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}))
        except Exception as exc:
            _log.warning("duty lease: could not ask for the lock", role=self.role, error=repr(exc))
            await _close_quietly(connection)
            return False
        if not taken:
            await connection.close()
            return False
        self._connection = connection
        _log.info("duty lease taken: this instance runs the background duties", role=self.role)
        return True

    async def close(self) -> None:
        """Give the lease up (before the engine is disposed: a checked-out connection outlives
        ``dispose`` and would keep the lock)."""
        if self._connection is None:
            return
        try:
            await self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception:  # the connection is broken: the server has already dropped the lock
            pass
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close_quietly(connection)


async def _close_quietly(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()  # never back to the pool: its session may hold the lock
    except Exception:
        pass
    try:
        await connection.close()
    except Exception:
        pass

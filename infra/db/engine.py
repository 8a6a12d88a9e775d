"""Async engine and session factory for the tradebus Postgres store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

_ASYNC_DRIVER = "postgresql+asyncpg"


def _asyncpg_url(url: str) -> str:
    """The URL with the asyncpg driver; a bare ``postgresql://`` URL is upgraded, other drivers refused."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername=_ASYNC_DRIVER)
    if parsed.drivername != _ASYNC_DRIVER:
        # A sync driver inside the async engine would fail much later and far less clearly.
        raise ValueError(f"database URL must use {_ASYNC_DRIVER}://, got {parsed.drivername}://")
    return parsed.render_as_string(hide_password=False)


def _refuse_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """Pool checkout: a connection the server closed (a Postgres restart, a terminated backend)
    is replaced before anyone uses it. asyncpg marks a connection closed as soon as the event
    loop has read the server's goodbye, so this needs no round trip; raising DisconnectionError
    makes the pool discard it and connect again."""
    raw = getattr(dbapi_connection, "_connection", None)  # the asyncpg connection behind the adapter
    if raw is not None and raw.is_closed():
        raise DisconnectionError("pooled connection was closed by the server")


def create_engine(url: str, **engine_options: Any) -> AsyncEngine:
    """An asyncpg engine for ``url``.

    A connection killed by a Postgres restart is replaced at checkout instead of failing the
    next handler (``_refuse_closed``): a local check, where SQLAlchemy's ``pool_pre_ping`` costs
    three round trips per checkout with asyncpg (BEGIN, ``;``, ROLLBACK), more than most reads
    themselves (decision 0030). A connection that dies unnoticed fails its statement as a
    disconnect, which invalidates the pool; the handler's transient retry then connects anew.
    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine` (e.g.
    ``pool_size``; ``pool_pre_ping=True`` still adds the round-trip ping).
    """
    engine = create_async_engine(_asyncpg_url(url), **engine_options)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def read_only_engine(url: str, timeout: float, pool_size: int = 5) -> AsyncEngine:
    """An engine for a process that only reads the ledger (the console API, the MCP server).

    Read-only at the database (``default_transaction_read_only``), so a bug cannot write the
    ledger; every wait bounded by ``timeout`` seconds (connect, each statement, a pooled
    connection), so a stuck Postgres fails a request with a reason instead of hanging it."""
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=timeout,
        connect_args={"server_settings": {"default_transaction_read_only": "on"}, "timeout": timeout,
                      "command_timeout": timeout},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine``.

    ``expire_on_commit=False`` because handlers read their objects after committing (to build
    the reply message); expiring them would trigger implicit IO, which asyncio forbids.
    """
    return async_sessionmaker(engine, expire_on_commit=False)


def read_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same engine (and pool) in autocommit: for reads only, where each
    statement stands alone.

    Under READ COMMITTED (the default here) every statement sees its own snapshot whether or not
    it runs in a transaction, so a read loses nothing outside one, and saves the BEGIN and the
    ROLLBACK that a session's implicit transaction costs (two round trips around a one-statement
    read). Never for writes: without a transaction, statements commit one by one. A read that
    needs one snapshot across statements (``Ledger.account_view``) keeps its transaction."""
    engine = sessions.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"sessions must be bound to an AsyncEngine, got {type(engine).__name__}")
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)

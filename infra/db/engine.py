"""Async engine and session factory for the tradebus Postgres store."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

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


def create_engine(url: str, **engine_options: Any) -> AsyncEngine:
    """An asyncpg engine for ``url``.

    ``pool_pre_ping`` is on so a connection killed by a Postgres restart is replaced
    transparently instead of failing the next handler. Extra keyword arguments go to
    :func:`sqlalchemy.ext.asyncio.create_async_engine` (e.g. ``pool_size``).
    """
    engine_options.setdefault("pool_pre_ping", True)
    return create_async_engine(_asyncpg_url(url), **engine_options)


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

"""Programmatic Alembic: upgrade to head, read the applied revision, refuse an unmigrated database.

No ``alembic.ini`` is needed: the configuration is built here, with ``script_location`` computed
from this file, so ``tradebus migrate`` works from any working directory and from an installed
wheel. Agents call :func:`ensure_migrated` at start-up; only ``tradebus migrate`` changes schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db.engine import create_engine
from infra.settings import redact_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary but fixed key: concurrent `tradebus migrate` runs serialise on it instead of racing
# to create the same tables.
_MIGRATION_LOCK_KEY = 0x7472_6164_6562_7573  # "tradebus"


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this code expects."""


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations (also usable for ``command.revision``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # ConfigParser treats '%' as interpolation; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _engine_url(engine: AsyncEngine) -> str:
    return redact_url(engine.url.render_as_string(hide_password=False))


@asynccontextmanager
async def _engine_for(engine_or_url: AsyncEngine | str) -> AsyncIterator[AsyncEngine]:
    """Use a caller's engine as is; for a URL, a short-lived engine disposed afterwards."""
    if isinstance(engine_or_url, AsyncEngine):
        yield engine_or_url
        return
    engine = create_engine(engine_or_url, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, config: Config) -> str | None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return _read_revision(connection)


async def upgrade_head(database_url: str) -> str:
    """Apply every pending migration in one transaction; return the revision now applied.

    Safe to repeat (already at head: nothing happens) and safe to run concurrently (an advisory
    lock serialises runs). Postgres DDL is transactional, so a failed upgrade leaves nothing.
    """
    config = alembic_config(database_url)
    async with _engine_for(database_url) as engine, engine.begin() as connection:
        revision = await connection.run_sync(_upgrade, config)
    if revision is None:
        raise RuntimeError("upgrade finished without a revision recorded")
    return revision


async def current_revision(database_url: AsyncEngine | str) -> str | None:
    """The revision applied to the database, or None if it was never migrated."""
    async with _engine_for(database_url) as engine, engine.connect() as connection:
        return await connection.run_sync(_read_revision)


async def ensure_migrated(engine_or_url: AsyncEngine | str) -> None:
    """Raise :class:`DatabaseNotMigrated` unless the database is exactly at :func:`head_revision`.

    Agents call this at start-up, so running old code on a new schema (or new code on an old
    one) fails loudly with the fix in the message instead of failing on the first query.
    """
    expected = head_revision()
    async with _engine_for(engine_or_url) as engine:
        async with engine.connect() as connection:
            actual = await connection.run_sync(_read_revision)
        if actual is not None and actual != expected and actual not in _known_revisions():
            # Migrating would not help: the schema is newer than this code.
            raise DatabaseNotMigrated(
                f"database at {_engine_url(engine)} is at revision {actual}, unknown to this code "
                f"(expected {expected}); deploy the code that matches the database"
            )
        if actual != expected:
            raise DatabaseNotMigrated(
                f"database at {_engine_url(engine)} is at revision {actual}, expected {expected}; "
                "run `tradebus migrate`"
            )

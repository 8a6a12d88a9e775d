"""Postgres store: engine, models, migrations and the idempotency helper."""

from infra.db.engine import create_engine, read_only_engine, read_sessions, session_factory
from infra.db.idempotency import claim_message, processed_once
from infra.db.migrate import (
    DatabaseNotMigrated,
    alembic_config,
    current_revision,
    ensure_migrated,
    head_revision,
    upgrade_head,
)
from infra.db.models import Base, ProcessedMessage

__all__ = [
    "Base",
    "DatabaseNotMigrated",
    "ProcessedMessage",
    "alembic_config",
    "claim_message",
    "create_engine",
    "current_revision",
    "ensure_migrated",
    "head_revision",
    "processed_once",
    "read_only_engine",
    "read_sessions",
    "session_factory",
    "upgrade_head",
]

"""Where one run keeps its state: a fresh set of stores per replay run, or the configured ones.

A replay run is reproducible only if it starts from nothing: a fresh Postgres database (the
ledger starts with its initial balances, no processed ids from an earlier run), a fresh InfluxDB
database and a fresh bus exchange (no messages left in durable queues by an interrupted run).
All three are named ``{base}_run_{YYYYmmdd_HHMMSS}_{xxxx}``. See
claudedocs/decisions/0006-run-command.md.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from infra.db import upgrade_head
from infra.influx import quote_identifier
from infra.logging import get_logger
from infra.settings import Settings, redact_url

log = get_logger(component="run.plan")

_RUN_SUFFIX = re.compile(r"_run_\d{8}_\d{6}_[0-9a-f]{4}$")


def new_run_id(now: datetime | None = None) -> str:
    """run_YYYYmmdd_HHMMSS_xxxx: sorts by start time, unique across runs started in one second."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
    return f"run_{stamp}_{secrets.token_hex(2)}"


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _base_name(name: str) -> str:
    # `postgres` is an admin database (scripts/test's default), not a sensible prefix.
    name = _RUN_SUFFIX.sub("", name)
    return "tradebus" if name in ("", "postgres") else name


@dataclass(frozen=True)
class RunPlan:
    """The stores of one run and the environment every agent of it gets."""

    run_id: str
    fresh: bool
    database_url: str
    influx_database: str
    bus_exchange: str
    # Fresh InfluxDB databases need CREATE DATABASE rights (1.x); a token-managed 2.x/3 server
    # keeps the configured bucket.
    influx_fresh: bool
    env: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        """The Settings the agents of this run see (environment and .env, plus the run's own)."""
        return Settings(**self.env)  # type: ignore[arg-type]  # aliases, validated as from the env

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("run", self.run_id + ("" if self.fresh else " (configured stores)")),
            ("postgres", redact_url(self.database_url)),
            ("influxdb", self.influx_database + ("" if self.influx_fresh or not self.fresh else " (configured; token-managed)")),
            ("bus exchange", self.bus_exchange),
        ]


def make_plan(settings: Settings, *, fresh: bool, run_id: str, env: dict[str, str]) -> RunPlan:
    """Decide the store names; ``env`` holds the run's other settings (source, symbols, ...)."""
    url = settings.database_url.get_secret_value()
    if not fresh:
        db_url, influx_db, exchange, influx_fresh = url, settings.influxdb_database, settings.bus_exchange, False
    else:
        db_url = with_database(url, f"{_base_name(database_name(url))}_{run_id}")
        influx_fresh = settings.influxdb_token is None
        influx_db = f"{_base_name(settings.influxdb_database)}_{run_id}" if influx_fresh else settings.influxdb_database
        exchange = f"{_base_name(settings.bus_exchange)}_{run_id}"
    full_env = {**env, "DATABASE_URL": db_url, "INFLUXDB_DATABASE": influx_db, "BUS_EXCHANGE": exchange}
    return RunPlan(run_id, fresh, db_url, influx_db, exchange, influx_fresh, full_env)


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://) as a DSN asyncpg itself accepts."""
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


async def ensure_postgres_database(url: str) -> bool:
    """CREATE DATABASE for the URL's database when missing (connecting to `postgres`); True if created."""
    name = database_name(url)
    admin = await asyncpg.connect(asyncpg_dsn(with_database(url, "postgres")))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
        log.info("database created", database=name)
        return True
    finally:
        await admin.close()


async def prune_run_databases(url: str, keep: int) -> list[str]:
    """Drop all but the newest ``keep`` Postgres databases of earlier runs of this base name.

    A database still in use (another run) is left alone: DROP without FORCE refuses."""
    base = _base_name(database_name(url))
    admin = await asyncpg.connect(asyncpg_dsn(with_database(url, "postgres")))
    dropped: list[str] = []
    try:
        rows = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{base}\\_run\\_%")
        names = sorted(r["datname"] for r in rows if _RUN_SUFFIX.search(r["datname"]) and _base_name(r["datname"]) == base)
        for name in names[: max(0, len(names) - keep)]:
            try:
                await admin.execute('DROP DATABASE "' + name.replace('"', '""') + '"')
                dropped.append(name)
            except asyncpg.PostgresError as exc:
                log.warning("old run database kept", database=name, error=str(exc))
    finally:
        await admin.close()
    return dropped


async def _influx_query(settings: Settings, statement: str, *, mutate: bool) -> dict[str, object]:
    headers = {}
    if settings.influxdb_token is not None:
        headers["Authorization"] = f"Token {settings.influxdb_token.get_secret_value()}"
    async with httpx.AsyncClient(base_url=settings.influxdb_url, timeout=10, headers=headers) as client:
        if mutate:
            response = await client.post("/query", data={"q": statement})
        else:
            response = await client.get("/query", params={"q": statement})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


async def prune_run_influx_databases(settings: Settings, keep: int) -> list[str]:
    """The InfluxDB counterpart of :func:`prune_run_databases` (1.x only; a no-op with a token)."""
    if settings.influxdb_token is not None:
        return []
    base = _base_name(settings.influxdb_database)
    answer = await _influx_query(settings, "SHOW DATABASES", mutate=False)
    values = [row[0] for result in answer.get("results", []) for series in result.get("series", []) for row in series.get("values", [])]  # type: ignore[union-attr]
    names = sorted(v for v in values if isinstance(v, str) and _RUN_SUFFIX.search(v) and _base_name(v) == base)
    dropped = names[: max(0, len(names) - keep)]
    for name in dropped:
        await _influx_query(settings, f"DROP DATABASE {quote_identifier(name)}", mutate=True)
    return dropped


async def prepare_stores(plan: RunPlan, settings: Settings, keep_runs: int) -> str:
    """Create (and for fresh runs prune) the databases, migrate Postgres; the revision applied."""
    if plan.fresh:
        dropped = await prune_run_databases(plan.database_url, keep=max(0, keep_runs - 1))
        if plan.influx_fresh:
            try:
                dropped += await prune_run_influx_databases(settings, keep=max(0, keep_runs - 1))
            except httpx.HTTPError as exc:
                log.warning("old InfluxDB run databases not pruned", error=str(exc))
        if dropped:
            log.info("old run databases dropped", databases=dropped)
    await ensure_postgres_database(plan.database_url)
    if plan.influx_fresh:
        await _influx_query(settings, f"CREATE DATABASE {quote_identifier(plan.influx_database)}", mutate=True)
    return await upgrade_head(plan.database_url)

"""Service fixtures shared by every test layer.

Each integration test gets isolated names: its own bus exchange and queue prefix, its own
Postgres database, its own InfluxDB database — so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.support.services import (
    influxdb_container,
    postgres_container,
    rabbitmq_container,
    service_url,
)

# Agent processes the tests start serve no /metrics unless a test gives them a port: six test runs
# on one machine would otherwise fight over the roles' default ports (9101-9105).
os.environ.setdefault("METRICS_PORT", "0")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    with service_url("RABBITMQ_URL", 5672, rabbitmq_container) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of the Postgres server (an existing database to connect to for admin work)."""
    with service_url("DATABASE_URL", 5432, postgres_container) as url:
        yield url


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _asyncpg_dsn(url: str) -> str:
    # asyncpg speaks plain postgresql://; SQLAlchemy URLs carry the +asyncpg driver suffix.
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server; its SQLAlchemy asyncpg URL."""
    admin = await asyncpg.connect(_asyncpg_dsn(_with_database(server_url, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    return url


async def drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(_with_database(server_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test (SQLAlchemy asyncpg URL); dropped afterwards."""
    name = unique_name("tb_test")
    yield await create_database(postgres_server_url, name)
    await drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def influxdb_server_url() -> Iterator[str]:
    with service_url("INFLUXDB_URL", 8086, influxdb_container) as url:
        yield url


@pytest.fixture
async def influxdb_database(influxdb_server_url: str) -> AsyncIterator[tuple[str, str]]:
    """(url, database): a fresh InfluxDB database for this test, dropped afterwards."""
    name = unique_name("tb_test")
    async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
        response = await client.post("/query", data={"q": f'CREATE DATABASE "{name}"'})
        response.raise_for_status()
        yield influxdb_server_url, name
        await client.post("/query", data={"q": f'DROP DATABASE "{name}"'})

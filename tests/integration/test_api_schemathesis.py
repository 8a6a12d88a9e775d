"""Property-based tests of the console API from its own OpenAPI document (schemathesis, the app
in process over ASGI, on real Postgres, InfluxDB and RabbitMQ): no generated request may cause a
server error (5xx). Bounded: a few examples per operation, so it runs well under a minute.

The stream is left out: it never ends by design (tests/integration/test_api_stream.py covers it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans

from agents.api import create_app
from infra.bus import system_topology
from infra.db import upgrade_head
from tests.conftest import create_database, drop_database, unique_name
from tests.support.api import OPERATOR_TOKEN, api_settings
from tests.support.bus import cleanup

pytestmark = pytest.mark.integration

EXAMPLES = 8


@pytest.fixture
def api_app(rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str) -> Iterator[object]:
    """The app on a migrated database of its own, its own Influx database and bus exchange."""
    import httpx

    name, influx_db, exchange = unique_name("tb_api_st"), unique_name("tb_api_st"), f"tbapi_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(postgres_server_url, name))
    asyncio.run(upgrade_head(url))
    httpx.post(f"{influxdb_server_url}/query", data={"q": f'CREATE DATABASE "{influx_db}"'}, timeout=10).raise_for_status()
    app = create_app(api_settings(rabbitmq_url, url, (influxdb_server_url, influx_db), exchange))
    try:
        yield app
    finally:
        shutdown_lifespans()  # schemathesis started the app's lifespan once; close its stores and bus
        asyncio.run(cleanup(rabbitmq_url, system_topology(exchange)))
        httpx.post(f"{influxdb_server_url}/query", data={"q": f'DROP DATABASE "{influx_db}"'}, timeout=10)
        asyncio.run(drop_database(postgres_server_url, name))


def test_no_request_causes_a_server_error(api_app: object) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    # The document itself needs a token, like every route but health.
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api_app, headers=headers).exclude(path="/api/v1/stream")
    failures: dict[str, str] = {}
    tested = 0
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  phases=[Phase.explicit, Phase.generate])
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
        tested += 1
    assert tested >= 25, f"only {tested} operations in the OpenAPI document"
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())

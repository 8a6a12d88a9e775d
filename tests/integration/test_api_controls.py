"""Controls and access on the real services: a control route publishes the control message the
agents consume (observed on the bus), with who asked and why; the read token cannot steer; no
token reads nothing; tokens never reach a log line; recorded controls are read from the ledger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest

from agents.ops.controls import build_control
from infra.db import create_engine, session_factory, upgrade_head
from infra.db.controls import record_control
from infra.logging import configure_logging
from protocol import topics
from protocol.codec import decode_any
from protocol.enums import ControlKind, ControlOutcome
from protocol.messages.control import CancelOrder, ClosePosition, EmergencyStop, PauseStrategy
from tests.support.api import (
    OPERATOR, OPERATOR_TOKEN, READ, READ_TOKEN, api, api_settings, exchange, served_app,
)

pytestmark = pytest.mark.integration
__all__ = ["api", "exchange"]  # the fixtures, imported from tests.support.api


@pytest.fixture
async def controls_heard(rabbitmq_url: str, exchange: str, api: httpx.AsyncClient) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A private queue bound to control.# on the API's exchange (declared by the API)."""
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=topics.ALL_CONTROL)
        yield queue


async def next_control(queue: aio_pika.abc.AbstractQueue, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while (message := await queue.get(no_ack=True, fail=False)) is None:
            await asyncio.sleep(0.05)
    return decode_any(message.body)


async def test_controls_publish_their_message_with_who_and_why(api: httpx.AsyncClient, controls_heard: Any) -> None:
    response = await api.post("/api/v1/controls/emergency-stop", headers=OPERATOR,
                              json={"active": True, "reason": "exchange incident", "requested_by": "alice"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    stop = await next_control(controls_heard)
    assert isinstance(stop, EmergencyStop) and str(stop.message_id) == accepted["message_id"]
    assert (stop.active, stop.reason, stop.requested_by, stop.source) == (True, "exchange incident", "alice", "api")
    assert accepted["control"] == "ENGAGE_STOP" and accepted["routing_key"] == topics.EMERGENCY_STOP

    # Without requested_by the token's role is who asked.
    response = await api.post("/api/v1/controls/orders/tb-0123/cancel", headers=OPERATOR, json={"reason": "stuck"})
    assert response.status_code == 202, response.text
    cancel = await next_control(controls_heard)
    assert isinstance(cancel, CancelOrder) and (cancel.client_order_id, cancel.requested_by) == ("tb-0123", "operator")

    response = await api.post("/api/v1/controls/strategies/rsi-default/pause", headers=OPERATOR, json={"reason": "news"})
    assert response.status_code == 202, response.text
    pause = await next_control(controls_heard)
    assert isinstance(pause, PauseStrategy) and (pause.strategy_id, pause.paused) == ("rsi-default", True)

    response = await api.post("/api/v1/controls/positions/close", headers=OPERATOR,
                              json={"reason": "flatten", "strategy_id": "rsi-default", "symbol": "BTC/USDT"})
    assert response.status_code == 202, response.text
    close = await next_control(controls_heard)
    assert isinstance(close, ClosePosition) and (close.strategy_id, close.symbol) == ("rsi-default", "BTC/USDT")


async def test_the_read_token_cannot_steer_and_no_token_reads_nothing(api: httpx.AsyncClient, controls_heard: Any) -> None:
    body = {"active": True, "reason": "try"}
    assert (await api.post("/api/v1/controls/emergency-stop", headers=READ, json=body)).status_code == 403
    assert (await api.post("/api/v1/controls/emergency-stop", json=body)).status_code == 401
    refused = await api.post("/api/v1/controls/emergency-stop", headers={"Authorization": "Bearer nope"}, json=body)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert await controls_heard.get(no_ack=True, fail=False) is None  # nothing was published
    assert (await api.post("/api/v1/controls/emergency-stop", headers=OPERATOR, json={"active": True, "reason": " "})).status_code == 422
    for path in ("/balances", "/orders", "/agents", "/run", "/controls", "/openapi.json"):
        assert (await api.get(f"/api/v1{path}")).status_code == 401, path
        assert (await api.get(f"/api/v1{path}", headers=READ)).status_code == 200, path
    assert "/api/v1/balances" in (await api.get("/api/v1/openapi.json", headers=READ)).json()["paths"]
    assert (await api.get("/api/v1/docs")).status_code == 404  # no Swagger page: it loads from a CDN
    assert (await api.get("/api/v1/whoami", headers=OPERATOR)).json() == {"role": "operator"}
    health = await api.get("/api/v1/health")  # the probe needs no token
    assert health.status_code == 200 and health.json()["bus"] is True and health.json()["postgres"] is True


async def test_recorded_controls_are_read_from_the_ledger(api: httpx.AsyncClient, postgres_url: str) -> None:
    message = build_control(ControlKind.PAUSE_STRATEGY, strategy_id="rsi-default", reason="news", requested_by="bob", source="api")
    engine = create_engine(postgres_url)
    try:
        async with session_factory(engine).begin() as session:  # as the risk manager records it
            assert await record_control(session, message, "risk_manager", ControlOutcome.APPLIED, "paused")
    finally:
        await engine.dispose()
    (row,) = (await api.get("/api/v1/controls", headers=READ)).json()["controls"]
    assert (row["message_id"], row["agent"], row["kind"], row["requested_by"], row["reason"], row["outcome"]) == (
        str(message.message_id), "risk_manager", "PAUSE_STRATEGY", "bob", "news", "APPLIED")
    strategies = (await api.get("/api/v1/strategies", headers=READ)).json()["strategies"]
    assert {s["strategy_id"] for s in strategies} >= {"rsi-default"}


async def test_tokens_never_reach_the_logs(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], exchange: str, capfd: pytest.CaptureFixture[str]
) -> None:
    await upgrade_head(postgres_url)
    configure_logging("api", "DEBUG")  # JSON lines on the (captured) stderr, as the service logs
    # The test's own HTTP client logs every URL it requests (the stream's with its token); it is
    # not the service. The service talks HTTP only to InfluxDB, with no console token in it.
    client_level = logging.getLogger("httpx").level
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = api_settings(rabbitmq_url, postgres_url, influxdb_database, exchange)
        async with served_app(settings) as (_, base), httpx.AsyncClient(base_url=base, timeout=15) as http:
            await http.get("/api/v1/balances", headers=READ)
            await http.get("/api/v1/balances", headers={"Authorization": "Bearer wrong-token-value"})
            async with http.stream("GET", "/api/v1/stream", params={"access_token": READ_TOKEN}) as live:
                assert live.status_code == 200
            await http.post("/api/v1/controls/emergency-stop", headers=OPERATOR, json={"active": False, "reason": "logs"})
        out, err = capfd.readouterr()
    finally:  # (tests/conftest.py restores the rest of the logging set-up)
        logging.getLogger("httpx").setLevel(client_level)
    logs = out + err
    assert '"path": "/api/v1/stream"' in logs and '"path": "/api/v1/controls/emergency-stop"' in logs  # requests were logged
    for secret in (READ_TOKEN, OPERATOR_TOKEN, "wrong-token-value"):
        assert secret not in logs, [line for line in logs.splitlines() if secret in line]

"""`tradebus api` ends at once, saying what to change, on a busy port or without its tokens
outside development; CORS stays closed unless origins are configured."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from agents.api import create_app
from agents.api.server import EXIT_CONFIG, PortUnavailable, check_port, main
from agents.api.settings import ApiSettings
from infra.tokens import MissingTokens

PRODUCTION = {"TRADEBUS_ENV": "production", "RABBITMQ_URL": "amqp://api:s3cr3t-x@127.0.0.1:5672/",
              "DATABASE_URL": "postgresql+asyncpg://tb:s3cr3t-x@127.0.0.1:5432/tb"}


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortUnavailable, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again: no error


def test_outside_development_it_refuses_to_start_without_two_different_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ApiSettings(**PRODUCTION)) == EXIT_CONFIG  # type: ignore[arg-type]
    assert "set API_READ_TOKEN, API_OPERATOR_TOKEN" in capsys.readouterr().err
    with pytest.raises(MissingTokens, match="must differ"):
        create_app(ApiSettings(**PRODUCTION, API_READ_TOKEN="same-token", API_OPERATOR_TOKEN="same-token"))  # type: ignore[arg-type]


def test_cors_is_closed_unless_origins_are_configured() -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    closed = TestClient(create_app(ApiSettings(), connect_bus=False))
    assert "access-control-allow-origin" not in closed.options("/api/v1/health", headers=preflight).headers
    opened = TestClient(create_app(ApiSettings(API_CORS_ORIGINS="https://desk.example"), connect_bus=False))  # type: ignore[call-arg]
    answer = opened.options("/api/v1/health", headers={**preflight, "Origin": "https://desk.example"})
    assert answer.headers["access-control-allow-origin"] == "https://desk.example"

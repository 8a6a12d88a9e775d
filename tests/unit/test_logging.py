"""Every log line is JSON with the agent and the correlation id; secrets are masked."""

import json

import pytest

from infra.logging import bind_correlation, clear_correlation, configure_logging, get_logger


def lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_carry_agent_and_correlation(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("risk_manager")
    log = get_logger()
    log.info("outside a message")
    bind_correlation("c-123")
    log.info("inside a message", api_key="abc", order="o-1")
    clear_correlation()
    first, second = lines(capsys.readouterr().err)
    assert first["agent"] == "risk_manager" and first["correlation_id"] is None
    assert second["correlation_id"] == "c-123" and second["order"] == "o-1"
    assert second["api_key"] == "***"
    assert second["level"] == "info" and "timestamp" in second


def test_stdlib_loggers_are_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("execution")
    logging.getLogger("some.library").warning("careful")
    (line,) = lines(capsys.readouterr().err)
    assert line["agent"] == "execution" and line["event"] == "careful"


def test_logging_outlives_the_stream_it_was_configured_with(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import logging
    import sys

    # Configure while stderr is a stream that is then closed (as pytest's capture streams are
    # after a test): later lines must go to the stderr of their own time, not raise.
    closed = io.StringIO()
    saved, sys.stderr = sys.stderr, closed
    try:
        configure_logging("strategy")
    finally:
        sys.stderr = saved
    closed.close()
    get_logger().info("after the old stream closed")
    logging.getLogger("lib").warning("library line too")
    first, second = lines(capsys.readouterr().err)
    assert first["event"] == "after the old stream closed" and second["event"] == "library line too"


def test_http_client_request_urls_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    # The console and MCP server query InfluxDB over httpx; a URL can hold credentials.
    import httpx

    configure_logging("api")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://reader:influx-pass-123@influx.local:8086/query?db=x").status_code == 200
    assert "influx-pass-123" not in capsys.readouterr().err

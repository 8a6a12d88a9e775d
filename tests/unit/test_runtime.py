"""Agent names resolve; an unknown agent starts nothing; a bad database is refused; retries back off."""

import os
import subprocess
import sys

import pytest

from agents.runtime.launch import EXIT_NOT_AVAILABLE, launch
from agents.runtime.registry import AGENTS, AgentNotAvailable, resolve
from infra.bus import retry_delay


def test_cli_and_package_spellings_resolve() -> None:
    assert resolve("risk-manager") is resolve("risk_manager") is AGENTS["risk-manager"]
    with pytest.raises(AgentNotAvailable, match="unknown agent"):
        resolve("portfolio")


def test_every_agent_is_built_and_an_unknown_one_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    for entry in AGENTS.values():
        module = __import__(entry.package, fromlist=["AGENT_CLASS"])
        assert getattr(module, "AGENT_CLASS", None) is not None, entry.package
    assert launch("portfolio") == EXIT_NOT_AVAILABLE
    assert "unknown agent" in capsys.readouterr().err


def test_python_dash_m_agent_refuses_an_unreachable_database_with_a_clear_message() -> None:
    # Through the real entry point, as an operator would run it; port 9 has no Postgres.
    env = {**os.environ, "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/none", "LOG_LEVEL": "INFO"}
    result = subprocess.run(
        [sys.executable, "-m", "agents.execution"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode not in (0, EXIT_NOT_AVAILABLE)
    assert "database" in (result.stdout + result.stderr).lower()


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays[:3] == [0.2, 0.4, 0.8]
    assert delays == sorted(delays) and max(delays) == 5.0

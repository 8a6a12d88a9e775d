"""Agent names resolve; an agent that is not built says so and starts nothing; retries back off."""

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


def test_agents_not_built_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    built = []
    for name, entry in AGENTS.items():
        module = __import__(entry.package, fromlist=["AGENT_CLASS"])
        if getattr(module, "AGENT_CLASS", None) is not None:
            built.append(name)
            continue
        assert launch(name) == EXIT_NOT_AVAILABLE
        assert f"issue #{entry.issue}" in capsys.readouterr().err


def test_python_dash_m_agent_reports_unknown_state() -> None:
    # Through the real entry point, as an operator would run it.
    result = subprocess.run([sys.executable, "-m", "agents.execution"], capture_output=True, text=True, timeout=60)
    from agents.execution import __dict__ as module

    if "AGENT_CLASS" not in module:
        assert result.returncode == EXIT_NOT_AVAILABLE
        assert "not built yet" in result.stderr


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays[:3] == [0.2, 0.4, 0.8]
    assert delays == sorted(delays) and max(delays) == 5.0

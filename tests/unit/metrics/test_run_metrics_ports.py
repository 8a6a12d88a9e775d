"""`tradebus run` gives every process its own metrics port and prints them in its header."""

from __future__ import annotations

import io

from rich.console import Console

from agents.run.command import RunOptions, RunSession
from agents.runtime.registry import AGENTS
from infra.settings import Settings


def _session() -> tuple[RunSession, io.StringIO]:
    out = io.StringIO()
    return RunSession(RunOptions(), Console(file=out, width=300, color_system=None)), out


def test_each_process_gets_its_own_port_shown_in_the_header() -> None:
    session, out = _session()
    env = session._metrics_ports(list(AGENTS.values()), Settings(METRICS_PORT=""))  # noqa: SLF001
    ports = {name: int(values["METRICS_PORT"]) for name, values in env.items()}
    assert set(ports) == set(AGENTS) and len(set(ports.values())) == len(AGENTS)
    header = out.getvalue()
    for name, port in ports.items():
        assert f"{name} :{port}" in header


def test_metrics_port_zero_turns_them_off_for_the_run() -> None:
    session, out = _session()
    assert session._metrics_ports(list(AGENTS.values()), Settings(METRICS_PORT="0")) == {}  # noqa: SLF001
    assert "off (METRICS_PORT=0)" in out.getvalue()

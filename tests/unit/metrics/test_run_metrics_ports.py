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


def _roles() -> dict[str, str]:
    # The five agents, the console and the notifier, as `tradebus run` starts them.
    roles = {name: entry.package.rsplit(".", 1)[1] for name, entry in AGENTS.items()}
    return {**roles, "api": "api", "notifier": "notifier"}


def test_each_process_gets_its_own_port_shown_in_the_header() -> None:
    session, out = _session()
    env = session._metrics_ports(_roles(), Settings(METRICS_PORT=""))  # noqa: SLF001
    ports = {name: int(values["METRICS_PORT"]) for name, values in env.items()}
    assert set(ports) == set(_roles()) and len(set(ports.values())) == len(_roles())
    header = out.getvalue()
    for name, port in ports.items():
        assert f"{name} :{port}" in header


def test_metrics_port_zero_turns_them_off_for_the_run() -> None:
    session, out = _session()
    assert session._metrics_ports(_roles(), Settings(METRICS_PORT="0")) == {}  # noqa: SLF001
    assert "off (METRICS_PORT=0)" in out.getvalue()

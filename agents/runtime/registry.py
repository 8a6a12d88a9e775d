"""The agents by CLI name, and how to start one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AgentEntry:
    cli_name: str
    package: str
    issue: int  # the issue that builds it, for the "not built yet" message


AGENTS: dict[str, AgentEntry] = {
    entry.cli_name: entry
    for entry in (
        AgentEntry("data-collection", "agents.data_collection", 3),
        AgentEntry("technical-analysis", "agents.technical_analysis", 4),
        AgentEntry("strategy", "agents.strategy", 4),
        AgentEntry("risk-manager", "agents.risk_manager", 5),
        AgentEntry("execution", "agents.execution", 6),
    )
}


class AgentNotAvailable(RuntimeError):
    """The named agent does not exist, or is not built yet."""


def resolve(name: str) -> AgentEntry:
    """Accept the CLI spelling (risk-manager) or the package spelling (risk_manager)."""
    key = name.strip().lower().replace("_", "-")
    if key not in AGENTS:
        raise AgentNotAvailable(f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}")
    return AGENTS[key]


def agent_class(entry: AgentEntry) -> type:
    """The Agent subclass an agent package exports as AGENT_CLASS once it is built."""
    module = importlib.import_module(entry.package)
    cls = getattr(module, "AGENT_CLASS", None)
    if cls is None:
        raise AgentNotAvailable(
            f"the {entry.cli_name} agent is not built yet (issue #{entry.issue}); nothing was started"
        )
    return cls

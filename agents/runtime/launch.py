"""Start one agent by name: used by `tradebus agent NAME` and `python -m agents.NAME`."""

from __future__ import annotations

import sys

from agents.runtime.registry import AgentNotAvailable, agent_class, resolve

# Exit code for "this agent cannot be started" (unknown or not built yet): distinct from a crash.
EXIT_NOT_AVAILABLE = 3


def launch(name: str) -> int:
    """Run the named agent until it is stopped; return the process exit code."""
    try:
        cls = agent_class(resolve(name))
    except AgentNotAvailable as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_NOT_AVAILABLE
    from agents.runtime.base import run_agent

    return run_agent(cls)

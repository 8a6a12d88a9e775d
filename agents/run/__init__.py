"""`tradebus run`: the five agents as supervised processes on this machine, with live progress,
the final portfolio and the reality check. A tool, not an agent: it imports the runtime and the
adapters, never an agent's code."""

from agents.run.command import RunOptions, run_command

__all__ = ["RunOptions", "run_command"]

"""The agent runtime shared by all five agents."""

from agents.runtime.base import Agent, run_agent
from agents.runtime.registry import AGENTS, AgentEntry, AgentNotAvailable, agent_class, resolve

__all__ = ["AGENTS", "Agent", "AgentEntry", "AgentNotAvailable", "agent_class", "resolve", "run_agent"]

"""The execution agent: places orders on the paper exchange (default) or through ccxt, stores and
reports every transition of their lifecycle, and reconciles with the exchange on every start."""

from agents.execution.agent import ExecutionAgent

AGENT_CLASS = ExecutionAgent

__all__ = ["AGENT_CLASS", "ExecutionAgent"]

"""The risk manager agent: approves, sizes and reserves balance for signals, or rejects them
with a reason code; settles execution reports into the ledger; publishes positions and risk
metrics; holds the emergency stop.

Pure decision code: ``sizing`` (shared with the backtester), ``rules``, ``metrics``,
``holdings``, ``outgoing``, ``account_check`` (a BUY's account-wide limits, decided again by the
ledger under the account lock: decision 0029). Process: ``agent``.
"""

from agents.risk_manager.agent import RiskManagerAgent

AGENT_CLASS = RiskManagerAgent

__all__ = ["AGENT_CLASS", "RiskManagerAgent"]

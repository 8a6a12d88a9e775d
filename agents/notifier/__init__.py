"""The alert notifier: fills, refused orders, emergency stops, agents DEGRADED or down, dead
letters, drawdown pauses and ledger drift, sent to webhooks and Telegram (issue #17)."""

from agents.notifier.agent import NotifierAgent

AGENT_CLASS = NotifierAgent

__all__ = ["AGENT_CLASS", "NotifierAgent"]

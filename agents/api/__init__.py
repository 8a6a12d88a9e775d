"""The operator console service (`tradebus api`): REST under /api/v1, a live SSE stream, the
controls (bus messages the agents apply) and the dashboard at /. See claudedocs/api.md."""

from agents.api.app import create_app

__all__ = ["create_app"]

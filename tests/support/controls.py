"""Rows of the ledger's ``controls`` table, waited for (a control is applied asynchronously)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.bus import wait_until
from tests.support.ledger import query

__all__ = ["control_rows", "wait_for_control"]

_COLUMNS = "agent, kind, target, requested_by, reason, outcome, detail, client_order_id"


async def control_rows(database_url: str, message_id: uuid.UUID) -> list[Any]:
    """Every agent's row for one control message, ordered by agent."""
    return await query(database_url, f"SELECT {_COLUMNS} FROM controls WHERE message_id = :m ORDER BY agent", m=message_id)


async def wait_for_control(database_url: str, message_id: uuid.UUID, agents: int = 1, timeout: float = 15.0) -> list[Any]:
    """The rows once ``agents`` agents have recorded the control; fails naming what it waited for."""
    rows: list[Any] = []

    async def recorded() -> bool:
        nonlocal rows
        rows = await control_rows(database_url, message_id)
        return len(rows) >= agents

    assert await wait_until(recorded, timeout), f"control {message_id}: {len(rows)} of {agents} agent row(s) after {timeout}s"
    return rows

"""Commits that need not wait for their own disk flush, because a later commit waits for it.

A Postgres commit normally returns only once its WAL record is on disk (``synchronous_commit``
on): on this kind of machine that flush is the single largest cost of a message, ~10 ms, where a
query is ~0.2 ms. The WAL is one sequence, so a synchronous commit flushes everything written
before it, including earlier commits that did not wait. ``defer_flush`` lets a transaction
commit without waiting, and is only correct where the caller makes a *later* synchronous commit
before anything outside the database depends on it (a message published, a delivery acked, an
order sent to a real exchange):

- a crash of the calling process changes nothing: a commit that did not wait is still committed
  and visible at once; Postgres's WAL writer flushes it within a fraction of a second;
- a crash of Postgres itself may lose such commits, but only as a suffix of the WAL, i.e. only
  together with every later commit, up to the next synchronous one. Nothing published or acked
  depends on them, so the redelivered message does the work again from scratch.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["defer_flush"]


async def defer_flush(session: AsyncSession) -> None:
    """Let the session's open transaction commit without waiting for its WAL flush.

    ``SET LOCAL``: it ends with the transaction, so a pooled connection never carries it on."""
    await session.execute(text("SET LOCAL synchronous_commit TO OFF"))

"""Exactly-once effects on top of at-least-once delivery.

The bus redelivers a message whenever it was not acked (crash, lost connection, handler error),
so every consumer sees duplicates. A consumer with database effects therefore:

1. opens one transaction,
2. claims the message id with :func:`claim_message` (insert into ``processed_messages``),
3. applies its effects only if the claim was new,
4. commits, and only then acks the message.

The id row and the effects commit or vanish together. If the process dies before the commit,
neither persists and the redelivery starts from scratch; if it dies after the commit but before
the ack, the redelivery finds the id and skips the effects (and is acked). Either way the effects
happen exactly once.

Concurrent deliveries of the same id (two replicas, or a redelivery racing the original) are
serialised by Postgres itself: ``INSERT ... ON CONFLICT DO NOTHING`` on a key that another open
transaction has just inserted waits for that transaction. If it commits, the waiter sees the
conflict and gets False; if it rolls back, the waiter's insert goes through and it gets True.
This relies on READ COMMITTED (the Postgres default); under REPEATABLE READ or SERIALIZABLE the
waiter gets a serialization failure instead, which the bus's retry turns into a redelivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from sqlalchemy import Text, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.models import ProcessedMessage


# Written out rather than built with the PostgreSQL dialect's insert(): SQLAlchemy cannot cache
# the compiled form of an INSERT ... ON CONFLICT (that Insert sets inherit_cache = False), so
# every claim, one per handled message in every consumer, compiled it again (a few tenths of a
# millisecond of CPU each, several under load). A text() statement is compiled once.
_CLAIM = text(
    f"INSERT INTO {ProcessedMessage.__tablename__} (consumer, message_id) VALUES (:consumer, :message_id) "
    "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
).bindparams(bindparam("consumer", type_=Text()), bindparam("message_id", type_=Uuid(as_uuid=True)))


async def claim_message(session: AsyncSession, consumer: str, message_id: UUID) -> bool:
    """Record ``message_id`` as processed by ``consumer`` inside the session's current transaction.

    Returns True the first time: the caller applies its effects in the same transaction and
    commits. Returns False if the id is already committed: the caller skips its effects (and
    still acks). Blocks while another open transaction holds a claim on the same id.
    Does not commit; the caller's commit (or rollback) decides for the claim and effects together.
    """
    result = await session.execute(_CLAIM, {"consumer": consumer, "message_id": message_id})
    # RETURNING yields a row only when the insert happened; a conflict returns nothing.
    return result.scalar_one_or_none() is not None


@asynccontextmanager
async def processed_once(
    sessions: async_sessionmaker[AsyncSession], consumer: str, message_id: UUID
) -> AsyncIterator[tuple[AsyncSession, bool]]:
    """Open a session and transaction, claim the message, yield ``(session, first)``.

    Apply effects only when ``first`` is True. Leaving the block normally commits the claim and
    the effects together; an exception rolls both back (so the message is retried cleanly) and
    propagates. Ack the message only after the block has exited without error::

        async with processed_once(sessions, "executor", envelope.message_id) as (session, first):
            if first:
                session.add(order)
        await message.ack()
    """
    async with sessions() as session, session.begin():
        first = await claim_message(session, consumer, message_id)
        yield session, first

"""Concurrent approvals of one process share one transaction, so they share its disk flush.

Every approval takes the row lock of its asset's balance (the atomic conditional update that
keeps reserved <= available) and holds it until its commit is on disk. With one transaction
per approval, approvals of one asset therefore run one flush after another, ~10 ms each on this
kind of disk: a hundred a second at best, however many run concurrently. Here the approvals
that arrive while a transaction is running wait for it and then go together in the next one
(a refused one undoes nothing of the others, see ``_run``). The rules are
those of :func:`reservations.approve`, statement for statement: a batch changes when commits
happen, never what an approval checks. A lone approval goes at once, alone: sequential callers
(one risk-manager consumer deciding one signal at a time) see no change. Approvals of a batch
run ordered by asset, so two processes' batches lock balance rows in the same order and cannot
deadlock on them. A batch with an account check (a BUY's account-wide limits, decision 0029)
takes the account lock first, before any balance row: one lock order again, and the approvals
of the batch see each other's reservations (one transaction) while other processes' BUYs wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.ledger import reservations as reservation_ops
from infra.db.ledger.account_lock import LockedBook
from infra.db.ledger.types import AccountCheck, ApproveOutcome, DecisionRecord, LedgerError, NewReservation

__all__ = ["ApprovalBatcher"]

# Bounds one transaction (and how long its balance locks are held) under a burst.
MAX_BATCH = 100


@dataclass
class _Request:
    consumer: str
    message_id: UUID
    reservation: NewReservation
    decision: DecisionRecord
    account_check: AccountCheck | None
    answer: asyncio.Future[ApproveOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ApprovalBatcher:
    """Runs approvals in shared transactions; one per :class:`~infra.db.ledger.Ledger`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], max_batch: int = MAX_BATCH) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None

    async def approve(
        self, consumer: str, message_id: UUID, reservation: NewReservation, decision: DecisionRecord,
        account_check: AccountCheck | None = None,
    ) -> ApproveOutcome:
        request = _Request(consumer, message_id, reservation, decision, account_check)
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="ledger-approvals")
        # Shielded: a caller cancelled mid-commit must not cancel the others' transaction. Its
        # approval may still commit; its message is redelivered and finds it (DUPLICATE).
        return await asyncio.shield(request.answer)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            batch.sort(key=lambda r: r.reservation.asset)
            try:
                answers = await self._run(batch)
            except BaseException as exc:  # cancelled (shutdown): unanswered, each caller's bus retries
                for request in batch:
                    if not request.answer.done():
                        request.answer.set_exception(exc)
                raise
            for request, answer in zip(batch, answers, strict=True):
                if isinstance(answer, Exception):
                    request.answer.set_exception(answer)
                else:
                    request.answer.set_result(answer)

    async def _run(self, batch: list[_Request]) -> list[ApproveOutcome | Exception]:
        """Each approval's outcome, or the error it alone raised, in batch order.

        A refused approval (LedgerError: a bug upstream) rolls the shared transaction back; the
        batch runs again without it, so one refusal undoes nothing of the others, and the normal
        path needs no savepoint per approval. Any other failure of a batch of several runs each
        approval on its own, so only its culprit fails (a transient one fails each again, and
        each caller's bus retries it)."""
        refused: dict[int, Exception] = {}
        while True:
            done: dict[int, ApproveOutcome] = {}
            current = -1
            try:
                async with self._sessions() as session, session.begin():
                    book = await _lock_if_checked(session, [r for i, r in enumerate(batch) if i not in refused])
                    for current, r in enumerate(batch):
                        if current not in refused:
                            done[current] = await self._approve(session, r, book)
            except LedgerError as exc:
                refused[current] = exc
                continue
            except Exception as exc:
                pending = [i for i in range(len(batch)) if i not in refused]
                if len(pending) > 1:
                    return [refused[i] if i in refused else await self._alone(r) for i, r in enumerate(batch)]
                refused.update(dict.fromkeys(pending, exc))
            return [refused[i] if i in refused else done[i] for i in range(len(batch))]

    async def _alone(self, request: _Request) -> ApproveOutcome | Exception:
        try:
            async with self._sessions() as session, session.begin():
                return await self._approve(session, request, await _lock_if_checked(session, [request]))
        except Exception as exc:
            return exc

    @staticmethod
    async def _approve(session: AsyncSession, r: _Request, book: LockedBook | None) -> ApproveOutcome:
        return await reservation_ops.approve(
            session, r.consumer, r.message_id, r.reservation, r.decision, r.account_check, book
        )


async def _lock_if_checked(session: AsyncSession, requests: list[_Request]) -> LockedBook | None:
    """The account lock, first in the transaction, when an approval in it has an account check
    (SELLs and unchecked BUYs alone never wait for it); the book its checks read once."""
    if any(r.account_check is not None for r in requests):
        return await LockedBook.lock(session)
    return None

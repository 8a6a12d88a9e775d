"""The crash journal: which messages this agent started handling and never finished.

A message that kills its consumer process (SIGKILL, OOM, a segfault in a C extension) never
reaches the consumer's retry logic, so the in-memory attempt count dies with the process and a
classic queue redelivers it forever. Quorum queues count deliveries (``x-delivery-count``), but
they count every return: a graceful shutdown in the middle of a long outage and a broker restart
count as much as a crash. The journal counts exactly the crashes:

- before the handler starts, the consumer records a row (queue, message, this process);
- when handling ends in any way the process survives (acked, dead-lettered, interrupted), the row
  goes again;
- so a row written by another process is a handling that process never finished: it died. The
  number of such rows for a message is how many consumers it has killed.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit is in the OS before the handler runs,
so it survives the death of the process (not a power cut, which is not a crash loop either), at
about the cost of a write() per message. Several processes of one agent may share the file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from pathlib import Path

from aio_pika.abc import AbstractIncomingMessage

from infra.logging import get_logger

log = get_logger(component="bus.journal")

# Rows of a message nobody redelivers again (handled elsewhere after a crash) are forgotten.
RETENTION_SECONDS = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handling (
    queue TEXT NOT NULL,
    message TEXT NOT NULL,
    process TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS handling_message ON handling (queue, message);
"""


def message_key(incoming: AbstractIncomingMessage) -> str:
    """The journal's name for a delivery: its message id, or a digest of its body without one."""
    if incoming.message_id:
        return str(incoming.message_id)
    return "sha256:" + hashlib.sha256(incoming.body).hexdigest()


class CrashJournal:
    """One SQLite file of unfinished handlings, shared by the consumers of one process.

    Any SQLite error disables the journal (logged, and reported by ``problem``) instead of
    stopping consumption: the quorum queues' ``x-delivery-limit`` remains as the backstop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process = uuid.uuid4().hex  # this process's rows; another process's rows are crashes
        self.problem: str | None = None
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and self.problem is None:
            db: sqlite3.Connection | None = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                db.execute("DELETE FROM handling WHERE started_at < ?", (time.time() - RETENTION_SECONDS,))
                self._db = db
            except (sqlite3.Error, OSError) as exc:
                if db is not None:
                    db.close()
                if isinstance(exc, sqlite3.Error):
                    self._failed(exc)  # busy: opened again on the next call
                else:
                    self._disable(exc)
        return self._db

    def _failed(self, exc: sqlite3.Error) -> None:
        """A busy file (another process of the agent writing) skips one record; anything else
        disables the journal."""
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            log.warning("crash journal busy; one handling not recorded", path=str(self.path), error=str(exc))
            return
        self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        self.problem = f"crash journal {self.path} unavailable ({type(exc).__name__}: {exc})"
        log.error("crash journal disabled; only the broker's delivery limit bounds crash loops", error=self.problem)
        if self._db is not None:
            self._db.close()
            self._db = None

    def crashes(self, queue: str, message: str) -> int:
        """How many earlier processes started handling this message and never finished."""
        db = self._connection()
        if db is None:
            return 0
        try:
            row = db.execute(
                "SELECT count(*) FROM handling WHERE queue = ? AND message = ? AND process != ?",
                (queue, message, self.process),
            ).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return 0
        return int(row[0])

    def begin(self, queue: str, message: str) -> None:
        """Record that this process starts handling the message (committed before returning)."""
        self._write("INSERT INTO handling VALUES (?, ?, ?, ?)", (queue, message, self.process, time.time()))

    def end(self, queue: str, message: str, *, settled: bool) -> None:
        """Handling ended with the process alive. ``settled`` (acked or dead-lettered): the
        message's story is over, forget its crashes too, so a copy an operator requeues from the
        dead-letter queue starts afresh. Otherwise (interrupted, redelivered later) only this
        process's row goes: earlier crashes still count."""
        if settled:
            self._write("DELETE FROM handling WHERE queue = ? AND message = ?", (queue, message))
        else:
            self._write(
                "DELETE FROM handling WHERE rowid = (SELECT rowid FROM handling "
                "WHERE queue = ? AND message = ? AND process = ? LIMIT 1)",
                (queue, message, self.process),
            )

    def _write(self, statement: str, parameters: tuple[object, ...]) -> None:
        db = self._connection()
        if db is None:
            return
        try:
            db.execute(statement, parameters)
        except sqlite3.Error as exc:
            self._failed(exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

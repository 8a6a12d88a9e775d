"""A real local HTTP server that records what it receives: it stands in for alert webhooks and
for Telegram's Bot API (``/bot<token>/sendMessage``) in the notifier's tests.

Per path it can fail a number of times first (``fail_first``) or hang until the client gives up
(``hang``): the notifier's retries and its isolation of a dead target are tested against it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    body: Any
    status: int


@dataclass
class AlertServer:
    fail_first: dict[str, int] = field(default_factory=dict)
    # The status of those failures (default 500), and a Retry-After header to send with them.
    fail_status: dict[str, int] = field(default_factory=dict)
    retry_after: dict[str, str] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def delivered(self, path: str) -> list[Any]:
        """Bodies the server accepted (2xx) on ``path``, in arrival order."""
        with self._changed:
            return [r.body for r in self.received if r.path == path and r.status == 200]

    def attempts(self, path: str) -> int:
        with self._changed:
            return sum(1 for r in self.received if r.path == path)

    async def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait (without blocking the event loop, where the notifier under test may run) until
        ``condition()`` holds; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                raise AssertionError(f"waited {timeout:g}s for {what}; received: {self.received!r}")
            await asyncio.sleep(0.05)

    def _answer(self, path: str, body: Any) -> int:
        with self._changed:
            remaining = self.fail_first.get(path, 0)
            status = self.fail_status.get(path, 500) if remaining > 0 else 200
            if remaining > 0:
                self.fail_first[path] = remaining - 1
            self.received.append(Received(path, body, status))
            self._changed.notify_all()
        return status

    @contextmanager
    def running(self) -> Iterator["AlertServer"]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                if self.path in owner.hang:
                    owner._release.wait(30)  # the client times out long before; released at shutdown
                status = owner._answer(self.path, body)
                answer = json.dumps({"ok": status == 200, "result": {"message_id": len(owner.received)}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if status != 200 and self.path in owner.retry_after:
                        self.send_header("Retry-After", owner.retry_after[self.path])
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client gave up (a hanging path)
                    pass

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, name="alert-server", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._release.set()
            server.shutdown()
            server.server_close()
            thread.join(10)

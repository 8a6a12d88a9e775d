"""Getting real exception objects out of real calls, for tests of the fault classification."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def caught(call: Callable[[], Awaitable[object]]) -> BaseException:
    """The exception a real call raises (fails the test if it raises nothing)."""
    try:
        await call()
    except BaseException as exc:  # noqa: BLE001 - the object is what is under test
        return exc
    raise AssertionError("the call was expected to fail")


def raised_by(call: Callable[[], object]) -> BaseException:
    """The exception a real synchronous call raises."""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the object is what is under test
        return exc
    raise AssertionError("the call was expected to fail")

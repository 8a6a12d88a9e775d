"""Broken endpoints for probe tests: a listener that accepts TCP and never answers, a closed port,
and a streaming reader for the JSON documents a `--watch --json` command prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """A port that accepts connections and never sends a byte (a broker stuck in its handshake)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep it open, say nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


class JsonStream:
    """Decodes consecutive JSON documents from a process's stdout as they arrive."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    async def next(self, timeout: float) -> dict[str, Any]:
        """The next whole document, waiting at most ``timeout`` seconds."""
        async def read() -> dict[str, Any]:
            while True:
                text = self._buffer.lstrip()
                if text:
                    try:
                        document, end = self._decoder.raw_decode(text)
                    except json.JSONDecodeError:
                        pass
                    else:
                        self._buffer = text[end:]
                        return document  # type: ignore[no-any-return]
                chunk = await self._stream.read(65536)
                if not chunk:
                    raise EOFError("the process closed its output")
                self._buffer += chunk.decode()

        return await asyncio.wait_for(read(), timeout)

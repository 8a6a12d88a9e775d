"""Helpers for tests that run `tradebus run` as a process: its output read as it comes (waits
for a line, bounded), its children found by module, its stores dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import asyncpg
import httpx

from tests.support.failures import closed_port

RUN_ID = r"run (run_\d{8}_\d{6}_[0-9a-f]{4})"
GUARD = 120.0  # seconds: hang guards, not speed assertions


def with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/]*$", f"/{name}", url)


def run_env(rabbitmq_url: str, postgres_server_url: str, influxdb_server_url: str, base: str) -> dict[str, str]:
    env = {**os.environ, "RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": with_db(postgres_server_url, base),
           "INFLUXDB_URL": influxdb_server_url, "INFLUXDB_DATABASE": base, "BUS_EXCHANGE": base,
           # The run's console on a port of its own: runs of parallel tests never meet on 8080.
           "API_PORT": str(closed_port())}
    for name in ("INFLUXDB_TOKEN", "API_READ_TOKEN", "API_OPERATOR_TOKEN"):
        env.pop(name, None)
    return env


def child_pid(parent: int, module: str) -> int | None:
    """The pid of the run's child process running ``python -m <module>``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"-m" in argv and module.encode() in argv:
            return int(entry.name)
    return None


class RunOutput:
    """The run's output lines as they come, and waits for a line matching a pattern."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode().rstrip())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str, timeout: float = GUARD) -> re.Match[str]:
        regex = re.compile(pattern)

        async def find() -> re.Match[str]:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                if self._reader.done():
                    raise AssertionError(f"run ended before {pattern!r}:\n{self.text}")
                await asyncio.sleep(0.1)

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} within {timeout:.0f}s:\n{self.text}") from None

    async def finish(self, timeout: float) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"run still going after {timeout:.0f}s:\n{self.text}") from None
        await self._reader
        return code


async def drop_stores(postgres_server_url: str, influxdb_server_url: str, names: list[str]) -> None:
    admin = await asyncpg.connect(with_db(postgres_server_url, "postgres").replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    async with httpx.AsyncClient(base_url=influxdb_server_url, timeout=10) as client:
        for name in names:
            await client.post("/query", data={"q": f'DROP DATABASE "{name}"'})


async def end_run(process: asyncio.subprocess.Process, postgres_server_url: str, influxdb_server_url: str,
                  store: str | None) -> None:
    """Kill a run that is still going (a failed test) and drop the stores it made."""
    if process.returncode is None:
        process.kill()
        await process.wait()
    if store is not None:
        await drop_stores(postgres_server_url, influxdb_server_url, [store])

"""A real Prometheus server (Debian's `prometheus` package) on a temporary directory, scraping the
ports a test gives it; queried through its HTTP API. scripts/lib/prometheus.sh installs it."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from agents.runtime.supervisor import child_preexec, stop_processes
from tests.support.services import unavailable


def prometheus_binary() -> str:
    """PROMETHEUS_BIN, or `prometheus` on PATH; skips the test (fails under CI=true) without one."""
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not binary:
        unavailable("no prometheus binary (Debian: apt-get install prometheus; scripts/test installs it as root)")
    return str(binary)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """``prometheus`` scraping ``targets`` (role -> port on 127.0.0.1) every second as job tradebus."""

    def __init__(self, directory: Path, targets: dict[str, int]) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        statics = "\n".join(
            f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{role: {role}}}' for role, port in targets.items()
        )
        self.config = directory / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: tradebus\n    static_configs:\n{statics}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def __aenter__(self) -> PrometheusServer:
        log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
            [prometheus_binary(), f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_preexec(),
        )
        log.close()
        await self.wait(self._ready, timeout=60, what=f"prometheus ready on {self.url}/-/ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        if self.process is not None:
            stop_processes([self.process], grace=10)

    async def _ready(self) -> bool:
        try:
            return (await self.client.get("/-/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self) -> str:
        path = self.directory / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.exists() else ""

    async def wait(self, predicate: Any, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"prometheus exited {self.process.returncode} while waiting for {what}:\n{self.log_tail()}")
            if await predicate():
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector's samples; AssertionError with Prometheus's reason on a bad query."""
        response = await self.client.get("/api/v1/query", params={"query": promql})
        body = response.json()
        assert body.get("status") == "success", f"{promql}: {body.get('errorType')}: {body.get('error')}"
        return list(body["data"]["result"])

    async def values(self, promql: str, by: str) -> dict[str, float]:
        """``{sample's label `by`: value}`` of an instant vector."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in await self.query(promql)}

    async def scalar(self, promql: str) -> float | None:
        result = await self.query(promql)
        return float(result[0]["value"][1]) if result else None

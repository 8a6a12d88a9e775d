"""Private instances of Postgres, RabbitMQ and InfluxDB that a chaos test may stop and start.

Other engineers and test runs use the machine's shared services (5432, 5672, 8086) at the same
time, so a test that restarts a store must own one: each class here starts its own server on
free ports with a temporary data directory, offers ``stop``/``start``/``restart(seconds)``, and
removes everything on ``close`` (also when the test failed; use it as a context manager).

Every wait is bounded and says what it waited for. A server that cannot be started raises
``ServiceUnavailable``; the fixture turns that into a skip locally and a failure under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

def _postgres_bin() -> Path:
    """TRADEBUS_POSTGRES_BIN, else the newest Debian server install (15 on this project's machines)."""
    if os.environ.get("TRADEBUS_POSTGRES_BIN"):
        return Path(os.environ["TRADEBUS_POSTGRES_BIN"])
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                       if p.parent.parent.name.isdigit() else 0)
    return installed[-1].parent if installed else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# The range free ports are taken from. Below the kernel's ephemeral range on purpose: a
# RabbitMQ listener in the ephemeral range was refused with eaddrinuse on this machine even
# though nothing listened there.
_PORT_RANGE = (20000, 32000)


class ServiceUnavailable(RuntimeError):
    """A private server could not be started (not installed, or it did not come up in time)."""


class OwnService(Protocol):
    """What a chaos test needs of a private server."""

    url: str

    def stop(self) -> None: ...

    def start(self) -> None: ...

    async def outage(self, seconds: float) -> None: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % (_PORT_RANGE[1] - _PORT_RANGE[0])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServiceUnavailable(f"no free port found in {_PORT_RANGE}")


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.3) -> None:
    """Poll ``check`` until it is true; raise ServiceUnavailable naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ServiceUnavailable(f"timed out after {timeout}s waiting for {what}")


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def run(cmd: list[str], *, what: str, timeout: float = 60, user: str | None = None, **kwargs: object) -> str:
    """Run a command to completion (bounded); its output, or ServiceUnavailable with the output."""
    if user is not None and os.geteuid() == 0:
        cmd = ["runuser", "-u", user, "--", *cmd]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"timed out after {timeout}s waiting for {what}: {cmd}") from exc
    except FileNotFoundError as exc:
        raise ServiceUnavailable(f"{what}: {cmd[0]} is not installed") from exc
    if done.returncode != 0:
        raise ServiceUnavailable(f"{what} failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")
    return str(done.stdout)


def _owned_dir(prefix: str, user: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None and os.geteuid() == 0:
        shutil.chown(path, user, user)
    return path


class _Managed:
    """restart(seconds) and context-manager cleanup shared by the three servers."""

    name = "service"

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def outage(self, seconds: float) -> None:
        """Stop, stay down ``seconds``, start again — without blocking the event loop."""
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.start)

    def __enter__(self) -> _Managed:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OwnPostgres(_Managed):
    """A PostgreSQL cluster of its own (initdb + pg_ctl, run as the `postgres` OS user when root),
    trust auth on 127.0.0.1, user ``postgres``."""

    name = "postgres"

    def __init__(self) -> None:
        self.user = "postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        self.dir = _owned_dir("tb_own_pg_", self.user)
        self.data = self.dir / "data"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._initialised = False

    def _pg_ctl(self, *args: str, what: str, timeout: float = 60) -> str:
        return run([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), *args], what=what, timeout=timeout, user=self.user)

    def start(self) -> None:
        if not self._initialised:
            run([str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                what="initdb of the private Postgres", timeout=120, user=self.user)
            self._initialised = True
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.dir / "postgres.log"), "-w", "-t", "60", "start",
                     what=f"the private Postgres to start on port {self.port}", timeout=75)

    def stop(self) -> None:
        # fast: connections are cut as in a real outage, the cluster shuts down cleanly.
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop", what="the private Postgres to stop", timeout=75)

    def close(self) -> None:
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            try:
                self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", what="the private Postgres to stop", timeout=45)
            except ServiceUnavailable:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnRabbitMQ(_Managed):
    """A second RabbitMQ node (its own node name, AMQP and distribution ports, data and logs).

    Run as the ``rabbitmq`` OS user when root, so it shares that user's Erlang cookie with the
    CLI tools; the machine's epmd (already running) registers the second node name beside the
    first. ``stop()``/``start()`` are ``stop_app``/``start_app``: the node stays up, the broker
    application (connections, queues) goes down, as in the issue's operations event."""

    name = "rabbitmq"

    def __init__(self) -> None:
        self.user = "rabbitmq" if os.geteuid() == 0 else None
        self.node = f"tbchaos{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = _owned_dir("tb_own_rmq_", self.user)
        (self.dir / "rabbitmq.conf").write_text("")  # not the machine's config, which binds 5672
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
        }

    def ctl(self, *args: str, what: str, timeout: float = 60) -> str:
        env = {**os.environ, "HOME": "/var/lib/rabbitmq"} if self.user else None
        return run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], what=what, timeout=timeout,
                   user=self.user, env=env, cwd="/tmp")

    def start(self) -> None:
        if self._process is None or self._process.poll() is not None:
            cmd = [str(RABBITMQ_BIN / "rabbitmq-server")]
            if self.user is not None:
                cmd = ["runuser", "-u", self.user, "--", *cmd]
            log = open(self.dir / "server.out", "ab")  # noqa: SIM115 - owned by the process
            try:
                self._process = subprocess.Popen(cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                                 cwd="/tmp", start_new_session=True)
            except FileNotFoundError as exc:
                raise ServiceUnavailable("rabbitmq-server is not installed") from exc
            finally:
                log.close()
        else:
            self.ctl("start_app", what=f"start_app of {self.node}")
        wait_until(self._accepting, timeout=90, what=f"the private RabbitMQ node {self.node} on port {self.port}")

    def _accepting(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            tail = (self.dir / "server.out").read_text(errors="replace")[-800:]
            raise ServiceUnavailable(f"the private RabbitMQ node exited {self._process.returncode}: {tail}")
        return port_answers(self.port)

    def stop(self) -> None:
        self.ctl("stop_app", what=f"stop_app of {self.node}")

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                self.ctl("stop", what=f"stop of {self.node}", timeout=30)
                self._process.wait(timeout=30)
            except (ServiceUnavailable, subprocess.TimeoutExpired):
                os.killpg(self._process.pid, 9)
                self._process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnInfluxDB(_Managed):
    """An influxd (1.x) of its own: meta, data and WAL in a temp dir, HTTP and RPC on free ports."""

    name = "influxdb"

    def __init__(self) -> None:
        self.port = free_port()
        self.rpc_port = free_port()
        self.dir = _owned_dir("tb_own_influx_", None)
        self.config = self.dir / "influxdb.conf"
        self.config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.dir}/meta"\n'
            f'[data]\n  dir = "{self.dir}/data"\n  wal-dir = "{self.dir}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.dir / "influxd.log", "ab")  # noqa: SIM115 - owned by the process
        try:
            self._process = subprocess.Popen(["influxd", "-config", str(self.config)], stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError as exc:
            raise ServiceUnavailable("influxd is not installed (scripts/test installs it on Debian)") from exc
        finally:
            log.close()
        wait_until(self._pings, timeout=60, what=f"the private InfluxDB on port {self.port}")

    def _pings(self) -> bool:
        import httpx

        if self._process is not None and self._process.poll() is not None:
            tail = (self.dir / "influxd.log").read_text(errors="replace")[-800:]
            raise ServiceUnavailable(f"the private influxd exited {self._process.returncode}: {tail}")
        try:
            return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

"""The operator console as a process of `tradebus run` (on by default, `--no-api` leaves it out).

Checked before anything starts: the port must be free (a busy port is a clear error, not a
process the supervisor restarts forever) and, outside development, both tokens must be set. In
development a run without tokens gets a fresh pair, written to the run's folder with owner-only
permissions (never printed, never logged), so the dashboard is usable at once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from agents.api.server import PortUnavailable, check_port
from agents.runtime.supervisor import ProcessSpec, agent_command
from infra.settings import Environment, Settings
from infra.tokens import MissingTokens, require_tokens

__all__ = ["ConsoleNotStarted", "ConsoleProcess", "console_spec"]

API_PROCESS = "api"
TOKENS_FILE = "api-tokens"


class ConsoleNotStarted(RuntimeError):
    """The console cannot start; the text says what to change."""


@dataclass(frozen=True)
class ConsoleProcess:
    spec: ProcessSpec
    url: str
    tokens_file: Path | None

    def describe(self) -> list[tuple[str, str]]:
        tokens = f"tokens in {self.tokens_file}" if self.tokens_file else "tokens: API_READ_TOKEN / API_OPERATOR_TOKEN"
        return [("console", f"{self.url}  (API {self.url}api/v1; {tokens}; --no-api leaves it out)")]


def _write_tokens(path: Path, read: str, operator: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(f"API_READ_TOKEN={read}\nAPI_OPERATOR_TOKEN={operator}\n")


def console_spec(settings: Settings, env: dict[str, str], log_dir: Path) -> ConsoleProcess:
    """The console's process spec on the run's stores, after checking it can start."""
    try:
        check_port(settings.api_host, settings.api_port)
    except PortUnavailable as exc:
        raise ConsoleNotStarted(f"the console cannot start: {exc}") from None
    process_env = dict(env)
    tokens_file = None
    if settings.api_read_token is None and settings.api_operator_token is None and settings.environment is Environment.DEVELOPMENT:
        tokens_file = log_dir / TOKENS_FILE
        read, operator = secrets.token_hex(24), secrets.token_hex(24)
        _write_tokens(tokens_file, read, operator)
        process_env.update(API_READ_TOKEN=read, API_OPERATOR_TOKEN=operator)
    try:
        require_tokens(settings, "the console (tradebus api)")
    except MissingTokens as exc:
        raise ConsoleNotStarted(f"{exc} (or run with --no-api)") from None
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    spec = ProcessSpec(API_PROCESS, agent_command("agents.api"), env=process_env, log_path=log_dir / "api.log")
    return ConsoleProcess(spec, f"http://{host}:{settings.api_port}/", tokens_file)

"""Bearer tokens of the operator console and the MCP server: who may read, who may steer.

Two tokens from settings: API_READ_TOKEN (reads only) and API_OPERATOR_TOKEN (reads and
controls). Tokens are compared in constant time and never logged. Outside development a
service that serves them refuses to start without both (``require_tokens``).
"""

from __future__ import annotations

import hmac
from enum import StrEnum

from pydantic import SecretStr

from infra.settings import Environment, Settings

__all__ = ["MissingTokens", "Role", "require_tokens", "role_for"]


class Role(StrEnum):
    READ = "read"
    OPERATOR = "operator"


class MissingTokens(RuntimeError):
    """A console or MCP HTTP service asked to start outside development without its tokens."""


def _matches(presented: str, expected: SecretStr | None) -> bool:
    if expected is None or not expected.get_secret_value():
        return False
    # compare_digest on bytes: constant time in the length of the presented token's prefix.
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())


def role_for(presented: str | None, settings: Settings) -> Role | None:
    """The role a presented bearer token grants, or None. Both comparisons always run."""
    if not presented:
        return None
    operator = _matches(presented, settings.api_operator_token)
    read = _matches(presented, settings.api_read_token)
    if operator:
        return Role.OPERATOR
    return Role.READ if read else None


def require_tokens(settings: Settings, service: str) -> None:
    """Refuse to serve outside development unless both tokens are set and differ."""
    if settings.environment is Environment.DEVELOPMENT:
        return
    read, operator = settings.api_read_token, settings.api_operator_token
    missing = [name for name, value in (("API_READ_TOKEN", read), ("API_OPERATOR_TOKEN", operator))
               if value is None or not value.get_secret_value()]
    if missing:
        raise MissingTokens(f"{service} refuses to start in {settings.environment.value}: set {', '.join(missing)}")
    assert read is not None and operator is not None
    if read.get_secret_value() == operator.get_secret_value():
        raise MissingTokens(f"{service}: API_READ_TOKEN and API_OPERATOR_TOKEN must differ")

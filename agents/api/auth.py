"""Bearer-token access: a read token for reads, an operator token for reads and controls.

Tokens are compared in constant time (infra.tokens.role_for) and never logged: the request log
(agents.api.app) writes the path without its query string, and the stream's ``access_token``
query parameter is accepted on the stream route only (EventSource cannot set headers).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from infra.settings import Settings
from infra.tokens import Role, role_for

__all__ = ["operator_role", "read_role", "stream_role"]

_bearer = HTTPBearer(auto_error=False, description="API_READ_TOKEN (reads) or API_OPERATOR_TOKEN (reads and controls)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def _role(presented: str | None, settings: Settings) -> Role:
    role = role_for(presented, settings)
    if role is None:
        detail = "a bearer token is required" if not presented else "unknown token"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)
    return role


def read_role(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Role:
    """Any valid token: the read token or the operator token."""
    return _role(credentials.credentials if credentials else None, _settings(request))


def operator_role(role: Annotated[Role, Depends(read_role)]) -> Role:
    """The operator token only; the read token is refused with 403."""
    if role is not Role.OPERATOR:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "controls need the operator token")
    return role


def stream_role(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None, Query(description="the token, for EventSource (which cannot set headers); this route only")
    ] = None,
) -> Role:
    """The stream accepts the header or ``?access_token=``."""
    presented = credentials.credentials if credentials else access_token
    return _role(presented, _settings(request))

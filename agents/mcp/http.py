"""The streamable HTTP transport, guarded by the console's bearer tokens (infra/tokens.py).

The SDK's own bearer-auth middleware does the HTTP part (401 without a valid token); the
verifier maps a token to scopes: the read token to ``tradebus:read``, the operator token to
``tradebus:read`` and ``tradebus:operate``. The acting tools check for the operate scope
(``agents/mcp/server.py``). Outside development the service refuses to start without both
tokens (``require_tokens``); in development it still needs at least one, because an open HTTP
port that can propose trades is never a default.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from agents.mcp.server import OPERATE_SCOPE, READ_SCOPE
from agents.mcp.settings import McpSettings
from infra.tokens import MissingTokens, Role, require_tokens, role_for

__all__ = ["SettingsTokenVerifier", "http_auth", "http_url"]


class SettingsTokenVerifier:
    """``mcp.server.auth.provider.TokenVerifier`` over API_READ_TOKEN / API_OPERATOR_TOKEN."""

    def __init__(self, settings: McpSettings) -> None:
        self._settings = settings

    async def verify_token(self, token: str) -> AccessToken | None:
        role = role_for(token, self._settings)
        if role is None:
            return None
        scopes = [READ_SCOPE, OPERATE_SCOPE] if role is Role.OPERATOR else [READ_SCOPE]
        # The AccessToken names the role, not the secret: it travels with every request's context.
        return AccessToken(token=f"<{role.value} token>", client_id=f"tradebus-{role.value}", scopes=scopes)


def http_url(settings: McpSettings, port: int | None = None) -> str:
    return f"http://{settings.mcp_host}:{settings.mcp_port if port is None else port}/mcp"


def http_auth(settings: McpSettings) -> tuple[AuthSettings, SettingsTokenVerifier]:
    """The SDK auth settings and verifier; ``MissingTokens`` when the service must not start."""
    require_tokens(settings, "tradebus mcp --transport http")
    if settings.api_read_token is None and settings.api_operator_token is None:
        raise MissingTokens("tradebus mcp --transport http needs API_READ_TOKEN and/or API_OPERATOR_TOKEN "
                            "(stdio needs none: the client starts the process)")
    # issuer_url is required by the SDK's model; the tokens are issued by this deployment's
    # settings, so the server's own URL names the issuer. No OAuth routes are served.
    auth = AuthSettings(issuer_url=http_url(settings).removesuffix("/mcp"), resource_server_url=None,
                        required_scopes=[READ_SCOPE])
    return auth, SettingsTokenVerifier(settings)

"""Bearer token roles: read, operator, none; refusal outside development."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from infra.tokens import MissingTokens, Role, require_tokens, role_for


def _settings(**env: str) -> Settings:
    return Settings.model_validate(env)


def test_each_token_grants_its_role_and_nothing_else_grants_any() -> None:
    s = _settings(API_READ_TOKEN="r-token-123", API_OPERATOR_TOKEN="o-token-456")
    assert role_for("r-token-123", s) is Role.READ
    assert role_for("o-token-456", s) is Role.OPERATOR
    assert role_for("r-token-12", s) is None
    assert role_for("", s) is None
    assert role_for(None, s) is None


def test_unset_tokens_grant_nothing_even_to_an_empty_string() -> None:
    s = _settings()
    assert role_for("", s) is None
    assert role_for("anything", s) is None


def test_outside_development_a_service_needs_two_different_tokens() -> None:
    with pytest.raises(MissingTokens, match="API_READ_TOKEN, API_OPERATOR_TOKEN"):
        require_tokens(_settings(TRADEBUS_ENV="test"), "tradebus api")
    with pytest.raises(MissingTokens, match="must differ"):
        require_tokens(_settings(TRADEBUS_ENV="test", API_READ_TOKEN="same", API_OPERATOR_TOKEN="same"), "x")
    require_tokens(_settings(TRADEBUS_ENV="test", API_READ_TOKEN="a", API_OPERATOR_TOKEN="b"), "x")
    require_tokens(_settings(), "x")  # development: tokens optional


def test_cors_origins_split_on_commas() -> None:
    assert _settings(API_CORS_ORIGINS="http://a, http://b").api_cors_origins == ["http://a", "http://b"]
    assert _settings().api_cors_origins == []

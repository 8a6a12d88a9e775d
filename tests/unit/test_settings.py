"""Settings come from the environment and refuse placeholder secrets outside development."""

import pytest
from pydantic import ValidationError

from infra.settings import DataSource, Settings, TradingMode, redact_url


def test_defaults_are_paper_trading_on_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRADING_MODE", "DATA_SOURCE", "SYMBOLS", "TRADEBUS_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.trading_mode is TradingMode.PAPER
    assert settings.data_source is DataSource.REPLAY
    assert settings.symbols == ["BTC/USDT"]


def test_environment_overrides_and_symbol_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS", "btc/usdt, eth/usdt")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:p@rabbit:5672/")
    settings = Settings(_env_file=None)
    assert settings.symbols == ["BTC/USDT", "ETH/USDT"]
    assert settings.rabbitmq_url.get_secret_value() == "amqp://u:p@rabbit:5672/"
    assert "p@" not in repr(settings)  # secrets never print


@pytest.mark.parametrize("password", ["guest", "changeme", ""])
def test_production_refuses_placeholder_passwords(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    monkeypatch.setenv("TRADEBUS_ENV", "production")
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://tradebus:{password}@rabbit:5672/")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://tradebus:s3cure-Xy@db/tradebus")
    with pytest.raises(ValidationError, match="RABBITMQ_URL uses a placeholder"):
        Settings(_env_file=None)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBUS_ENV", "production")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://tradebus:k8%23Lq2@rabbit:5672/")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://tradebus:s3cure-Xy@db/tradebus")
    assert Settings(_env_file=None).environment.value == "production"


def test_redact_url_hides_password() -> None:
    assert redact_url("amqp://user:hunter2@host:5672/") == "amqp://user:***@host:5672/"
    assert redact_url("http://host:8086") == "http://host:8086"


def test_redact_url_hides_a_password_in_the_query() -> None:
    # asyncpg takes ?password=, InfluxDB 1.x ?u=&p=: the console's /run and the logs show these URLs.
    assert redact_url("postgresql+asyncpg://tb@db:5432/tb?password=hunter2&sslmode=require") == (
        "postgresql+asyncpg://tb@db:5432/tb?password=***&sslmode=require")
    assert redact_url("http://influx:8086/?u=reader&p=hunter2") == "http://influx:8086/?u=reader&p=***"
    assert redact_url("http://host:8086/?db=tradebus") == "http://host:8086/?db=tradebus"

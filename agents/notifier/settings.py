"""The notifier's settings: where alerts go, and how hard it tries (NOTIFIER_*, TELEGRAM_*)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr, field_validator

from infra.settings import Settings

__all__ = ["NotifierSettings"]


class NotifierSettings(Settings):
    """Targets, deduplication, rate limit, retries and queue bounds of the alert notifier.

    Webhook URLs are a secret as a whole (a Slack or Discord webhook URL is its own credential),
    and the Telegram bot token is one: neither is ever logged."""

    notifier_webhook_urls: SecretStr | None = Field(
        default=None, alias="NOTIFIER_WEBHOOK_URLS",
        description="comma-separated URLs that get every alert as a JSON POST",
    )
    telegram_bot_token: SecretStr | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(default=None, alias="TELEGRAM_CHAT_ID")
    telegram_api_url: str = Field(
        default="https://api.telegram.org", alias="TELEGRAM_API_URL",
        description="Bot API base URL (a local Bot API server, or a test server, can stand in)",
    )
    notifier_dedup_window: float = Field(
        default=300.0, ge=0, alias="NOTIFIER_DEDUP_WINDOW", description="seconds an alert key is sent once"
    )
    notifier_rate_per_minute: int = Field(
        default=20, ge=1, le=6000, alias="NOTIFIER_RATE_PER_MINUTE", description="alerts per target per minute"
    )
    notifier_retry_attempts: int = Field(default=5, ge=1, le=50, alias="NOTIFIER_RETRY_ATTEMPTS")
    notifier_retry_backoff: float = Field(default=1.0, gt=0, le=600, alias="NOTIFIER_RETRY_BACKOFF")
    notifier_retry_backoff_cap: float = Field(default=60.0, gt=0, le=3600, alias="NOTIFIER_RETRY_BACKOFF_CAP")
    notifier_timeout: float = Field(default=10.0, gt=0, le=120, alias="NOTIFIER_TIMEOUT", description="seconds per HTTP request")
    notifier_queue_size: int = Field(
        default=1000, ge=1, alias="NOTIFIER_QUEUE_SIZE", description="alerts waiting per target; the oldest is dropped beyond"
    )
    notifier_bus_queue_length: int = Field(
        default=10_000, ge=10, alias="NOTIFIER_BUS_QUEUE_LENGTH",
        description="messages the notifier's private broker queue holds (drop-head beyond)",
    )
    notifier_down_after: float = Field(
        default=3.0, gt=1, alias="NOTIFIER_DOWN_AFTER", description="heartbeat intervals without a beat = agent down"
    )
    # The risk manager's own setting, read from the same variable: its pause threshold.
    risk_max_drawdown: Decimal = Field(default=Decimal("0.2"), gt=0, le=1, alias="RISK_MAX_DRAWDOWN")

    @field_validator("notifier_webhook_urls", "telegram_bot_token", "telegram_chat_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes a variable that .env leaves empty as ""; that is "not configured".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    def webhook_urls(self) -> list[str]:
        if self.notifier_webhook_urls is None:
            return []
        return [part.strip() for part in self.notifier_webhook_urls.get_secret_value().split(",") if part.strip()]

    @property
    def telegram_configured(self) -> bool:
        return self.telegram_bot_token is not None and bool(self.telegram_chat_id)

    @property
    def has_targets(self) -> bool:
        return bool(self.webhook_urls()) or self.telegram_configured

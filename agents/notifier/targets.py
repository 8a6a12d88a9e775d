"""Where alerts go: generic webhooks (a JSON POST) and Telegram's Bot API (sendMessage).

The Telegram URL holds the bot token (``/bot<token>/sendMessage``) and a webhook URL often is a
credential itself, so a target is only ever named by :attr:`Target.name` (the host, never the
path), and every error text passes :meth:`Target.redact` before it is logged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agents.notifier.alerts import Alert

__all__ = ["Target", "TelegramTarget", "WebhookTarget", "format_text", "webhook_body"]

# Telegram refuses a message over 4096 characters.
TELEGRAM_MAX_TEXT = 4096
_ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


def format_text(alert: Alert, deployment: str) -> str:
    """The alert as a short plain-text message (no markup: nothing in it needs escaping)."""
    lines = [f"{_ICONS.get(alert.severity.value, '')} [{deployment}] {alert.title}".strip()]
    lines += [f"{name}: {value}" for name, value in alert.fields.items() if value]
    lines.append(f"at {alert.at.isoformat()}" + (f" · correlation {alert.correlation_id}" if alert.correlation_id else ""))
    text = "\n".join(lines)
    return text if len(text) <= TELEGRAM_MAX_TEXT else text[: TELEGRAM_MAX_TEXT - 3] + "..."


def webhook_body(alert: Alert, deployment: str) -> dict[str, Any]:
    """The JSON a webhook receives: the alert's parts plus its text, ready to display."""
    return {
        "source": "tradebus",
        "deployment": deployment,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "key": alert.key,
        "title": alert.title,
        "text": format_text(alert, deployment),
        "fields": alert.fields,
        "at": alert.at.isoformat(),
        "correlation_id": alert.correlation_id,
    }


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


class Target(ABC):
    """One destination: its display name, its URL (secret) and the request body for an alert."""

    name: str
    url: str
    secrets: tuple[str, ...]

    @abstractmethod
    def body(self, alert: Alert, deployment: str) -> dict[str, Any]:
        """The JSON the target is sent for ``alert`` (each kind of target has its own shape)."""

    def redact(self, text: str) -> str:
        """``text`` without the URL or any secret in it (error messages quote the URL)."""
        for secret in sorted((s for s in self.secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


@dataclass
class WebhookTarget(Target):
    url: str
    index: int = 1

    def __post_init__(self) -> None:
        self.name = f"webhook{self.index} {_host(self.url)}"
        path = urlsplit(self.url).path
        # The whole URL, then its path and query on their own (httpx quotes them separately).
        self.secrets = (self.url, self.url.split("://", 1)[-1], path if len(path) > 1 else "", urlsplit(self.url).query)

    def body(self, alert: Alert, deployment: str) -> dict[str, Any]:
        return webhook_body(alert, deployment)


@dataclass
class TelegramTarget(Target):
    api_url: str
    token: str
    chat_id: str

    def __post_init__(self) -> None:
        self.url = f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage"
        self.name = f"telegram {_host(self.api_url)}"
        self.secrets = (self.token,)

    def body(self, alert: Alert, deployment: str) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "text": format_text(alert, deployment), "disable_web_page_preview": True}

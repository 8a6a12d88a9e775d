"""The text and JSON an alert becomes, and the redaction of target URLs and tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from agents.notifier.alerts import Alert, Kind, Severity
from agents.notifier.settings import NotifierSettings
from agents.notifier.agent import build_targets
from agents.notifier.targets import TELEGRAM_MAX_TEXT, TelegramTarget, WebhookTarget, format_text, webhook_body

ALERT = Alert(key="fill:x:1", kind=Kind.FILL, severity=Severity.INFO, title="BUY 0.05 BTC/USDT @ 50000",
              fields={"strategy": "trend", "empty": ""}, at=datetime(2026, 1, 1, tzinfo=UTC), correlation_id="c-1")


def test_text_has_title_fields_and_time() -> None:
    text = format_text(ALERT, "tradebus")
    assert text.splitlines() == [
        "ℹ️ [tradebus] BUY 0.05 BTC/USDT @ 50000", "strategy: trend", "at 2026-01-01T00:00:00+00:00 · correlation c-1"]


def test_a_long_text_is_cut_to_telegrams_limit() -> None:
    long = Alert(key="k", kind=Kind.DEAD_LETTER, severity=Severity.CRITICAL, title="x" * 10_000)
    assert len(format_text(long, "d")) == TELEGRAM_MAX_TEXT


def test_webhook_body_is_the_alert_as_json() -> None:
    body = webhook_body(ALERT, "prod")
    assert body["kind"] == "fill" and body["severity"] == "info" and body["key"] == "fill:x:1"
    assert body["fields"] == {"strategy": "trend", "empty": ""} and body["deployment"] == "prod"
    assert body["text"] == format_text(ALERT, "prod")
    assert json.loads(json.dumps(body)) == body  # what httpx sends must serialise


def test_telegram_posts_to_the_bot_path_and_names_only_the_host() -> None:
    target = TelegramTarget("http://127.0.0.1:9000/", "123:SECRET", "-100")
    assert target.url == "http://127.0.0.1:9000/bot123:SECRET/sendMessage"
    assert target.name == "telegram http://127.0.0.1:9000"
    assert target.body(ALERT, "d") == {"chat_id": "-100", "text": format_text(ALERT, "d"), "disable_web_page_preview": True}
    assert target.redact(f"ConnectError for url {target.url}") == "ConnectError for url http://127.0.0.1:9000/bot***/sendMessage"


def test_a_webhook_url_is_never_shown_beyond_its_host() -> None:
    target = WebhookTarget("https://hooks.example.com/services/T0/B0/XYZ?k=v", 2)
    assert target.name == "webhook2 https://hooks.example.com"
    assert "XYZ" not in target.redact(f"error on {target.url} path /services/T0/B0/XYZ")


def test_targets_come_from_settings_and_empty_values_configure_nothing() -> None:
    none = NotifierSettings(NOTIFIER_WEBHOOK_URLS="", TELEGRAM_BOT_TOKEN="", TELEGRAM_CHAT_ID="")  # type: ignore[call-arg]
    assert build_targets(none) == [] and not none.has_targets
    some = NotifierSettings(NOTIFIER_WEBHOOK_URLS="http://a/1, http://b/2", TELEGRAM_BOT_TOKEN="t",  # type: ignore[call-arg]
                            TELEGRAM_CHAT_ID="42")
    assert [t.name for t in build_targets(some)] == ["webhook1 http://a", "webhook2 http://b", "telegram https://api.telegram.org"]
    assert "t" not in repr(some.telegram_bot_token).replace("SecretStr", "")

"""`tradebus run` starts the notifier only when there is a target (or when asked), and the CLI
offers `tradebus notifier` and `run --notify/--no-notify`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agents.cli import app
from agents.run.command import notifier_wanted

TARGET_VARIABLES = ("NOTIFIER_WEBHOOK_URLS", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")


@pytest.fixture
def no_targets(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in TARGET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_target_the_run_leaves_the_notifier_out_unless_asked(no_targets: pytest.MonkeyPatch) -> None:
    assert notifier_wanted(None) is False
    assert notifier_wanted(True) is True


def test_a_webhook_or_a_complete_telegram_target_starts_it(no_targets: pytest.MonkeyPatch) -> None:
    no_targets.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    assert notifier_wanted(None) is False  # a token without a chat id is no target
    no_targets.setenv("TELEGRAM_CHAT_ID", "42")
    assert notifier_wanted(None) is True
    assert notifier_wanted(False) is False
    no_targets.delenv("TELEGRAM_BOT_TOKEN")
    no_targets.setenv("NOTIFIER_WEBHOOK_URLS", "http://127.0.0.1:1/hook")
    assert notifier_wanted(None) is True


def test_the_cli_has_the_notifier_command_and_the_run_flag() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["notifier", "--help"]).exit_code == 0
    help_text = runner.invoke(app, ["run", "--help"], terminal_width=200).output
    assert "--notify" in help_text and "--no-notify" in help_text

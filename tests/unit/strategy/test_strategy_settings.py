"""The strategy agent's settings and its refusal of a history too short for its strategies."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.strategy.agent import StrategyAgent
from agents.strategy.settings import StrategySettings
from agents.strategy.strategies import StrategyConfigError


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRATEGY_CONFIG", str(tmp_path / "mine.yaml"))
    monkeypatch.setenv("STRATEGY_HISTORY_LENGTH", "300")
    settings = StrategySettings()
    assert settings.strategy_config == tmp_path / "mine.yaml" and settings.strategy_history_length == 300
    assert StrategyAgent.settings_class is StrategySettings


def test_a_history_shorter_than_a_strategy_looks_back_is_refused() -> None:
    agent = StrategyAgent(StrategySettings(STRATEGY_HISTORY_LENGTH=60))
    with pytest.raises(StrategyConfigError, match=r"'sma-cross' looks back 99 candles; STRATEGY_HISTORY_LENGTH=60 must be at least 101"):
        agent._load_instances(agent.settings)  # type: ignore[arg-type]
    ok = StrategyAgent(StrategySettings(STRATEGY_HISTORY_LENGTH=101))
    assert [c.strategy_id for c, _ in ok._load_instances(ok.settings)][:1] == ["rsi-default"]  # type: ignore[arg-type]

"""Strategy instances from TOML/YAML with environment overrides; errors name file, instance, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.strategy.config import DEFAULT_CONFIG_PATH, env_key, load_strategy_config
from agents.strategy.strategies import StrategyConfigError


def write(tmp_path: Path, text: str, name: str = "strategies.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_config_loads_every_kind_on_btc_15m() -> None:
    configs = load_strategy_config()
    assert [c.strategy_id for c in configs] == ["rsi-default", "macd-cross", "bb-reversion", "sma-cross", "combined"]
    assert {c.kind for c in configs} == {"rsi", "macd_cross", "bollinger_reversion", "sma_cross", "combined"}
    assert all(c.symbols == ("BTC/USDT",) and c.timeframe == "15m" and c.enabled for c in configs)
    assert DEFAULT_CONFIG_PATH.name == "strategies.toml" and DEFAULT_CONFIG_PATH.exists()
    for config in configs:
        assert config.build().kind == config.kind


def test_defaults_come_from_the_file_or_the_settings(tmp_path: Path) -> None:
    path = write(tmp_path, '[[strategies]]\nid = "a"\nkind = "rsi"\n')
    (config,) = load_strategy_config(path, default_symbols=["ETH/USDT"], default_timeframe="1h")
    assert config.symbols == ("ETH/USDT",) and config.timeframe == "1h"
    path = write(tmp_path, '[defaults]\nsymbols = ["SOL/USDT"]\ntimeframe = "5m"\n[[strategies]]\nid = "a"\nkind = "rsi"\n')
    (config,) = load_strategy_config(path, default_symbols=["ETH/USDT"])
    assert config.symbols == ("SOL/USDT",) and config.timeframe == "5m"
    assert config.applies_to("SOL/USDT", "5m") and not config.applies_to("SOL/USDT", "1h")


def test_environment_overrides_single_values(tmp_path: Path) -> None:
    env = {
        "STRATEGY__RSI_DEFAULT__OVERSOLD": "28",
        "STRATEGY__SMA_CROSS__ENABLED": "false",
        "STRATEGY__MACD_CROSS__SYMBOLS": "BTC/USDT,eth/usdt",
        "STRATEGY__BB_REVERSION__TIMEFRAME": "1h",
        "STRATEGY_CONFIG": "ignored: not an override",
        "OTHER": "x",
    }
    configs = {c.strategy_id: c for c in load_strategy_config(environ=env)}
    assert configs["rsi-default"].build().params.oversold == 28.0
    assert configs["rsi-default"].params["preset"] == "default"  # the rest of the file stays
    assert configs["sma-cross"].enabled is False and not configs["sma-cross"].applies_to("BTC/USDT", "15m")
    assert configs["macd-cross"].symbols == ("BTC/USDT", "ETH/USDT")
    assert configs["bb-reversion"].timeframe == "1h"
    assert env_key("rsi-default") == "RSI_DEFAULT"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRATEGY__RSI_DEFAULT__OVERSOLD": "80"}, r"strategy 'rsi-default': params: .*oversold \(80\) must be below overbought"),
        ({"STRATEGY__RSI_DEFAULT__OVERSOLD": "low"}, r"strategy 'rsi-default': params: .*oversold: .*'low'"),
        ({"STRATEGY__RSI_DEFAULT__OVERSOLT": "20"}, r"strategy 'rsi-default': params: .*oversolt: Extra inputs"),
        ({"STRATEGY__RSI_DEFUALT__OVERSOLD": "20"}, r"STRATEGY__RSI_DEFUALT__OVERSOLD: no strategy instance 'RSI_DEFUALT'"),
        ({"STRATEGY__RSI_DEFAULT": "20"}, r"expected STRATEGY__<ID>__<FIELD>"),
        ({"STRATEGY__SMA_CROSS__TIMEFRAME": "7m"}, r"strategy 'sma-cross': timeframe"),
    ],
)
def test_bad_overrides_are_refused_with_the_instance_and_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message) as caught:
        load_strategy_config(environ=env)
    assert "strategies.toml" in str(caught.value) or env_key("x") == "X"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[strategies]]\nid = "a"\nkind = "momentum"\n', r"strategy 'a': params: unknown strategy kind 'momentum'"),
        ('[[strategies]]\nid = "a"\nkind = "sma_cross"\n[strategies.params]\nfast = 60\n', r"strategy 'a': params: .*fast \(60\) must be shorter than slow \(50\)"),
        ('[[strategies]]\nid = "a"\nkind = "rsi"\n[[strategies]]\nid = "a"\nkind = "macd_cross"\n', r"strategy 'a': duplicate id"),
        ('[[strategies]]\nid = "a-b"\nkind = "rsi"\n[[strategies]]\nid = "a_b"\nkind = "rsi"\n', r"strategy 'a_b': duplicate id \(clashes with 'a-b'"),
        ('[[strategies]]\nkind = "rsi"\n', r"strategies\[0\]: 'id' is required"),
        ('[[strategies]]\nid = "Bad Id"\nkind = "rsi"\n', r"strategy 'Bad Id': strategy_id"),
        ('[[strategies]]\nid = "a"\nkind = "rsi"\ncolour = "red"\n', r"strategy 'a': colour: Extra inputs"),
        ('[[strategies]]\nid = "a"\nkind = "rsi"\nsymbols = []\n', r"strategy 'a': symbols"),
        ('[[strategy]]\nid = "a"\nkind = "rsi"\n', r"expected a list of tables under 'strategies'"),
        ('[[strategies]\nid = "a"', r"not valid TOML"),
    ],
)
def test_bad_files_are_refused_naming_file_instance_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StrategyConfigError, match=message) as caught:
        load_strategy_config(path)
    assert str(caught.value).startswith(str(path))


def test_yaml_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "strategies:\n"
        "  - id: rsi-tight\n    kind: rsi\n    params: {preset: conservative}\n"
        "  - id: vote\n    kind: combined\n    symbols: [ETH/USDT]\n"
        "    params:\n      members:\n        - {kind: rsi}\n        - {kind: macd_cross, weight: 2}\n",
        "strategies.yaml",
    )
    first, second = load_strategy_config(path)
    assert first.build().params.oversold == 25.0
    assert second.symbols == ("ETH/USDT",) and len(second.build().members) == 2


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(StrategyConfigError, match="cannot read"):
        load_strategy_config(tmp_path / "nope.toml")
    with pytest.raises(StrategyConfigError, match="unknown config format"):
        load_strategy_config(write(tmp_path, "{}", "strategies.json"))

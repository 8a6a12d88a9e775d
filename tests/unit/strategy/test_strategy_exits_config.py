"""Protective exits in the strategy config ([strategies.exits]) and on the strategy's signals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agents.strategy.config import load_strategy_config
from agents.strategy.signals import build_signal
from agents.strategy.strategies import Decision, StrategyConfigError
from protocol import IndicatorSnapshot, Indicators, SignalSide
from protocol.exits import ExitSettings

ENTRY = '[[strategies]]\nid = "a"\nkind = "rsi"\n'


def load(tmp_path: Path, exits: str) -> ExitSettings | None:
    path = tmp_path / "strategies.toml"
    path.write_text(ENTRY + exits)
    [config] = load_strategy_config(path)
    return config.exits


def test_exits_table_is_read_and_validated(tmp_path: Path) -> None:
    assert load(tmp_path, "") is None
    exits = load(tmp_path, "[strategies.exits]\nstop_loss = 0.03\ntake_profit = 0.06\ntrailing_stop = 0.02\ntime_stop = 48\n")
    assert exits == ExitSettings(stop_loss=Decimal("0.03"), take_profit=Decimal("0.06"), trailing_stop=Decimal("0.02"), time_stop=48)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("stop_loss = 3\n", r"exits.stop_loss: .*less than 1"),
        ("stop = 0.1\n", r"exits.stop: .*[Ee]xtra"),
        ("stop_loss = 0.1\nstop_loss_atr = 2\n", "not both"),
        ("time_stop = 0\n", r"exits.time_stop"),
    ],
)
def test_bad_exits_name_the_file_instance_and_field(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message) as caught:
        load(tmp_path, "[strategies.exits]\n" + table)
    assert "strategies.toml: strategy 'a'" in str(caught.value)


def test_an_environment_override_replaces_the_exits(tmp_path: Path) -> None:
    path = tmp_path / "strategies.toml"
    path.write_text(ENTRY + "[strategies.exits]\nstop_loss = 0.03\n")
    [config] = load_strategy_config(path, environ={"STRATEGY__A__EXITS": "take_profit=0.1,time_stop=4"})
    assert config.exits == ExitSettings(take_profit=Decimal("0.1"), time_stop=4)
    with pytest.raises(StrategyConfigError, match=r"STRATEGY__A__EXITS: --exits: unknown exit 'stop'"):
        load_strategy_config(path, environ={"STRATEGY__A__EXITS": "stop=0.1"})


def test_signals_carry_the_instances_exits_only_when_set() -> None:
    snapshot = IndicatorSnapshot(
        source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="15m",
        candle_time=datetime(2024, 1, 1, tzinfo=UTC), close=Decimal(100), indicators=Indicators(),
    )
    decision = Decision(SignalSide.BUY, 1.0, "test")
    exits = ExitSettings(stop_loss=Decimal("0.02"))
    assert build_signal(snapshot, strategy_id="a", kind="rsi", decision=decision, exits=exits).exits == exits
    assert build_signal(snapshot, strategy_id="a", kind="rsi", decision=decision, exits=ExitSettings()).exits is None
    plain = build_signal(snapshot, strategy_id="a", kind="rsi", decision=decision)
    assert plain.exits is None and plain.exit_reason is None

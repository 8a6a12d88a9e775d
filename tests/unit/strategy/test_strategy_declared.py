"""Declared indicators with parameters on the strategy side (decision 0022): the snapshot
carries them (``extra``, backwards compatible), InfluxDB stores and returns them, the history
reads them live and rebuilt, and a strategy declaring a bad one is refused naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from agents.strategy.api import (
    IndicatorHistory,
    StrategyConfigError,
    StrategyLoadError,
    indicator,
    load_strategy,
    make_history,
)
from agents.strategy.strategies import RsiStrategy, build_strategy
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from infra.influx.lineprotocol import indicator_line
from infra.influx.rows import snapshot_from_row
from protocol import Candle, IndicatorSnapshot, Indicators, decode, encode

T0 = datetime(2021, 10, 1, tzinfo=UTC)


def snapshot(minute: int, **extra: str) -> IndicatorSnapshot:
    candle = Candle.closed(source="test", exchange="binance", symbol="BTC/USDT", timeframe="1m",
                           open_time=T0.replace(minute=minute), open=Decimal(1), high=Decimal(2), low=Decimal(1),
                           close=Decimal("1.5"), volume=Decimal(3))
    return IndicatorSnapshot.caused_by(
        candle, source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        candle_time=candle.open_time, close=candle.close, indicators=Indicators(rsi=Decimal("40.5")),
        extra={name: Decimal(value) for name, value in extra.items()},
    )


def test_the_snapshot_carries_declared_columns_and_reads_old_messages() -> None:
    new = snapshot(0, rsi_7="21.25", ema_50="43000.5")
    assert decode(encode(new), IndicatorSnapshot) == new
    old = new.model_dump(mode="json", by_alias=True)
    del old["extra"]  # a message from before decision 0022
    assert IndicatorSnapshot.model_validate(old).extra == {}
    with pytest.raises(ValidationError, match="'rsi' is a fixed indicator"):
        snapshot(0, rsi="1")
    with pytest.raises(ValidationError, match="write 'rsi_7'"):
        snapshot(0, rsi_07="1")
    with pytest.raises(ValidationError, match="unknown indicator column 'foo_1'"):
        snapshot(0, foo_1="1")


def test_influxdb_stores_declared_columns_as_fields_and_gives_them_back() -> None:
    original = snapshot(0, rsi_7="21.25", **{"bb_lower_20_2.5": "42000.125"})
    line = indicator_line(original)
    assert "rsi_7=21.25" in line and "bb_lower_20_2.5=42000.125" in line
    # SELECT * returns every field of the measurement: null where this point has none.
    row = {"time": 1633046400000, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "close": 1.5,
           "rsi": 40.5, "macd": None, "rsi_7": 21.25, "bb_lower_20_2.5": 42000.125, "ema_50": None}
    rebuilt = snapshot_from_row(row, "binance", "BTC/USDT", "1m")
    assert rebuilt.model_dump(exclude={"produced_at", "source"}) == original.model_dump(exclude={"produced_at", "source"})
    # The MCP server's reader shows them next to the fixed set, as it shows the fixed set.
    from agents.mcp.reads import indicators_dict

    assert indicators_dict(rebuilt)["indicators"] == {"rsi": "40.5", "rsi_7": "21.25", "bb_lower_20_2.5": "42000.125"}


def test_the_history_reads_declared_columns_appended_live_or_given_whole() -> None:
    history = IndicatorHistory(max_length=10)
    history.append(snapshot(0, rsi_7="20"))
    history.append(snapshot(1))  # rsi_7 warming up (or not declared then): NaN, not the last value
    history.append(snapshot(2, rsi_7="22", ema_50="5"))
    assert np.array_equal(history.col("rsi_7"), [20.0, np.nan, 22.0], equal_nan=True)
    assert np.array_equal(history.col("ema_50"), [np.nan, np.nan, 5.0], equal_nan=True)
    assert history.extra_columns == ("ema_50", "rsi_7") and history.row(2)["rsi_7"] == 22.0
    assert np.isnan(history.col("sma_200")).all()  # valid, never given: warming up
    with pytest.raises(KeyError, match="unknown indicator column 'rsx_7'"):
        history.col("rsx_7")
    whole = IndicatorHistory.from_columns([T0], [1.0], {"rsi_7": [30.0]}, readable={"rsi_7"})
    assert whole.col("rsi_7").item(0) == 30.0
    with pytest.raises(KeyError, match="was not computed.*rsi_7"):
        whole.col("rsi_14")
    with pytest.raises(ValueError, match="'rsi_1': rsi: period must be within"):
        IndicatorHistory.from_columns([T0], [1.0], {"rsi_1": [30.0]})
    assert make_history(rsi_7=[None, 25.0]).col("rsi_7").item(1) == 25.0


def test_a_builtin_rsi_with_a_period_declares_and_reads_that_rsi() -> None:
    assert build_strategy("rsi").indicator_columns == {"rsi"}
    seven = build_strategy("rsi", {"period": 7})
    assert seven.indicator_columns == {"rsi_7"}
    history = make_history(rsi=[50.0, 50.0], rsi_7=[25.0, 75.0])
    assert [seven.decide(history, i).side.value for i in range(2)] == ["BUY", "SELL"]
    assert seven.decide(history, 0).used == {"rsi_7": 25.0}
    assert build_strategy("rsi").decide(history, 0).side.value == "HOLD"
    with pytest.raises(StrategyConfigError, match="bad parameters for strategy kind 'rsi': period"):
        build_strategy("rsi", {"period": 1})
    assert indicator("rsi", period=7) == "rsi_7"
    with pytest.raises(StrategyConfigError, match="rsi: period must be within"):
        indicator("rsi", period=1)


class _BadBuiltinLike(RsiStrategy):
    @property
    def indicator_columns(self) -> frozenset[str]:
        return frozenset({"rsi_0"})


def test_a_bad_declaration_names_the_strategy_and_for_a_file_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.strategy.strategies import registry

    monkeypatch.setitem(registry.STRATEGY_KINDS, "bad_rsi", _BadBuiltinLike)
    with pytest.raises(StrategyConfigError, match=r"strategy kind 'bad_rsi' declares a bad indicator: 'rsi_0'"):
        build_strategy("bad_rsi")

    path = tmp_path / "mine.py"
    path.write_text(
        "from agents.strategy.api import HOLD, Decision, Strategy, StrategyParams\n"
        "\n"
        "class P(StrategyParams):\n"
        "    period: int = 7\n"
        "\n"
        "class Mine(Strategy):\n"
        "    Params = P\n"
        "\n"
        "    @property\n"
        "    def indicator_columns(self):\n"
        "        return frozenset({f'ema_{self.params.period}'})\n"
        "\n"
        "    def decide(self, history, i):\n"
        "        return Decision(HOLD, 0.0, 'hold')\n"
    )
    assert load_strategy(f"{path}:Mine", {"period": 50}).indicator_columns == {"ema_50"}
    with pytest.raises(StrategyLoadError, match=rf"{path}:6: Mine declares a bad indicator: 'ema_1': ema: period must be within 2\.\.10000, got 1"):
        load_strategy(f"{path}:Mine", {"period": 1})


def test_ta_indicators_setting_is_split_and_checked() -> None:
    settings = TechnicalAnalysisSettings(_env_file=None, TA_INDICATORS="rsi_7, ema_200,donchian_upper_20")  # type: ignore[call-arg]
    assert settings.ta_indicators == ("rsi_7", "ema_200", "donchian_upper_20") and settings.ta_default_set
    with pytest.raises(ValidationError, match="TA_INDICATORS: unknown indicator column 'foo_2'"):
        TechnicalAnalysisSettings(_env_file=None, TA_INDICATORS="rsi_7,foo_2")  # type: ignore[call-arg]



def test_a_backtest_refuses_what_the_analysis_agent_would_refuse_and_warms_up_the_union() -> None:
    from agents.backtest.runs import StrategyChoice, spec_for, warmup_for
    from agents.technical_analysis.indicators import IndicatorParams

    params = IndicatorParams(window=200)
    with pytest.raises(StrategyConfigError, match=r"strategy 'rsi': indicator rsi_300 warms up over 300 candles: the window of 200"):
        spec_for(StrategyChoice(name="rsi", kind="rsi"), params, {"period": 300})
    spec = spec_for(StrategyChoice(name="rsi", kind="rsi"), params, {"period": 150})
    assert spec.strategy.indicator_columns == {"rsi_150"} and warmup_for([spec]) == 200


def test_builtin_macd_and_bollinger_kinds_declare_their_own_periods() -> None:
    assert build_strategy("macd_cross").indicator_columns == {"macd", "macd_signal"}
    macd = build_strategy("macd_cross", {"fast": 5, "slow": 35, "signal": 5})
    assert macd.indicator_columns == {"macd_5_35_5", "macd_signal_5_35_5"}
    history = make_history(macd_5_35_5=[-1.0, 1.0], macd_signal_5_35_5=[0.0, 0.0], macd=[1.0, -1.0], macd_signal=[0.0, 0.0])
    assert macd.decide(history, 1).side.value == "BUY" and build_strategy("macd_cross").decide(history, 1).side.value == "SELL"
    assert set(macd.decide(history, 1).used) == {"macd_5_35_5", "macd_signal_5_35_5", "macd_5_35_5_prev", "macd_signal_5_35_5_prev"}
    with pytest.raises(StrategyConfigError, match="give fast, slow and signal together"):
        build_strategy("macd_cross", {"fast": 5})

    assert build_strategy("bollinger_reversion").indicator_columns == {"bb_percent_b", "bb_lower", "bb_upper"}
    bands = build_strategy("bollinger_reversion", {"period": 10, "stddev": 2.5})
    assert bands.indicator_columns == {"bb_percent_b_10_2.5", "bb_lower_10_2.5", "bb_upper_10_2.5"}
    wide = make_history(**{"bb_percent_b_10_2.5": [-0.2], "bb_lower_10_2.5": [90.0], "bb_upper_10_2.5": [110.0]},
                        bb_percent_b=[0.5], bb_lower=[95.0], bb_upper=[105.0])
    assert bands.decide(wide, 0).side.value == "BUY" and build_strategy("bollinger_reversion").decide(wide, 0).side.value == "HOLD"
    with pytest.raises(StrategyConfigError, match="give period and stddev together"):
        build_strategy("bollinger_reversion", {"period": 10})

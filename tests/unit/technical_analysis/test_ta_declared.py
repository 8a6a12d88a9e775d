"""Indicators on demand (decision 0022): every supported indicator family, with parameters
other than the defaults, equals TA-Lib called directly on the real BTC candles; a fixed column
and its parametrised twin are the same computation; the union of what strategies declare is
computed, each column once; names have one spelling and bad ones are refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib

from agents.strategy.config import StrategyInstanceConfig
from agents.strategy.declared import union_of
from agents.technical_analysis.agent import columns_to_compute
from agents.technical_analysis.functions import lookback
from agents.technical_analysis.indicators import (
    COLUMNS,
    IndicatorParams,
    check_window,
    compute_columns,
    max_lookback,
    rolling_columns,
)
from protocol.indicators import FAMILIES, IndicatorNameError, IndicatorSpec, canonical_column, parse_column
from tests.unit.technical_analysis.reference import Series

PARAMS = IndicatorParams()


def direct(s: Series) -> dict[str, np.ndarray]:
    """TA-Lib called by hand, with parameters none of the fixed set uses."""
    h, lo, c, v = s.high, s.low, s.close, s.volume
    macd, signal, hist = talib.MACD(c, fastperiod=5, slowperiod=35, signalperiod=5)
    upper, middle, lower = talib.BBANDS(c, timeperiod=10, nbdevup=2.5, nbdevdn=2.5)
    k, d = talib.STOCH(h, lo, c, fastk_period=5, slowk_period=2, slowd_period=4)
    high_20, low_20 = talib.MAX(h, timeperiod=20), talib.MIN(lo, timeperiod=20)
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(upper - lower != 0, (c - lower) / (upper - lower), np.nan)
        bandwidth = np.where(middle != 0, (upper - lower) / middle, np.nan)
    return {
        "rsi_7": talib.RSI(c, 7), "sma_200": talib.SMA(c, 200), "ema_50": talib.EMA(c, 50), "wma_10": talib.WMA(c, 10),
        "roc_5": talib.ROC(c, 5), "mom_10": talib.MOM(c, 10), "atr_7": talib.ATR(h, lo, c, 7),
        "natr_7": talib.NATR(h, lo, c, 7), "adx_10": talib.ADX(h, lo, c, 10), "cci_20": talib.CCI(h, lo, c, 20),
        "willr_14": talib.WILLR(h, lo, c, 14), "mfi_14": talib.MFI(h, lo, c, v, 14),
        "macd_5_35_5": macd, "macd_signal_5_35_5": signal, "macd_hist_5_35_5": hist,
        "bb_upper_10_2.5": upper, "bb_middle_10_2.5": middle, "bb_lower_10_2.5": lower,
        "bb_percent_b_10_2.5": percent_b, "bb_bandwidth_10_2.5": bandwidth,
        "stoch_k_5_2_4": k, "stoch_d_5_2_4": d,
        "donchian_upper_20": high_20, "donchian_lower_20": low_20, "donchian_middle_20": (high_20 + low_20) / 2,
    }


def test_every_parametrised_indicator_equals_talib_called_directly_on_real_candles(btc: Series) -> None:
    expected = direct(btc)
    # Every family with parameters is covered (obv and vwap have only their fixed names).
    assert {parse_column(name)[0].family for name in expected} == {f for f, fam in FAMILIES.items() if fam.params}
    computed = compute_columns(*btc.columns(), PARAMS, only=set(expected))
    assert set(computed) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(computed[name], values, err_msg=name)
        spec, _ = parse_column(name)
        # The warm-up is TA-Lib's own lookback: NaN before it, a number at it.
        assert np.isnan(computed[name][: lookback(spec)]).all() and not np.isnan(computed[name][lookback(spec)]), name


def test_a_fixed_column_and_its_parametrised_twin_are_the_same_computation(btc: Series) -> None:
    twins = {"rsi": "rsi_14", "sma_slow": "sma_50", "ema_fast": "ema_12", "atr": "atr_14", "adx": "adx_14",
             "macd_hist": "macd_hist_12_26_9", "bb_upper": "bb_upper_20_2", "stoch_d": "stoch_d_14_3_3"}
    computed = compute_columns(*btc.columns(0, 400), PARAMS, only={*twins, *twins.values()})
    for fixed, named in twins.items():
        assert computed[fixed].tobytes() == computed[named].tobytes(), fixed
    # Under other TA_* periods the fixed name follows them; the parametrised one does not move.
    other = IndicatorParams(rsi_period=7)
    moved = compute_columns(*btc.columns(0, 400), other, only={"rsi", "rsi_7", "rsi_14"})
    assert moved["rsi"].tobytes() == moved["rsi_7"].tobytes()
    assert moved["rsi"].tobytes() == talib.RSI(btc.close[:400], 7).tobytes()
    assert moved["rsi_14"].tobytes() == computed["rsi_14"].tobytes()


def test_rolling_columns_compute_declared_columns_over_the_live_window(btc: Series) -> None:
    params = IndicatorParams(window=60)
    columns = btc.columns(0, 100)
    rolled = rolling_columns(*columns, params, only={"rsi_7", "donchian_upper_20"})
    for i in (30, 59, 60, 99):
        start = max(0, i - 59)
        window = tuple(a[start : i + 1] for a in columns)
        assert rolled["rsi_7"][i] == talib.RSI(window[4], 7)[-1]
        assert rolled["donchian_upper_20"][i] == talib.MAX(window[2], 20)[-1]


def rsi(strategy_id: str, period: int | None, *, enabled: bool = True) -> StrategyInstanceConfig:
    params = {} if period is None else {"period": period}
    return StrategyInstanceConfig(strategy_id=strategy_id, kind="rsi", symbols=("BTC/USDT",), timeframe="15m",
                                  params=params, enabled=enabled)


def test_the_union_of_two_strategies_reading_rsi_7_and_rsi_14_holds_both_columns_once(tmp_path: Path) -> None:
    configs = [
        rsi("rsi-7", 7), rsi("rsi-14", 14), rsi("rsi-7-again", 7), rsi("off", 21, enabled=False),
        StrategyInstanceConfig(strategy_id="bands", kind="bollinger_reversion", symbols=("BTC/USDT",), timeframe="15m"),
        StrategyInstanceConfig(strategy_id="broken", kind="rsi", symbols=("BTC/USDT",), timeframe="15m", params={"period": 1}),
    ]
    declared = union_of(configs)
    assert declared.columns == {"rsi_7", "rsi_14", "bb_percent_b", "bb_lower", "bb_upper"}
    assert declared.parametrised == {"rsi_7", "rsi_14"}
    assert declared.declared_by("rsi_7") == ["rsi-7", "rsi-7-again"]
    assert set(declared.broken) == {"broken"} and "period" in declared.broken["broken"]
    assert not declared.reads_any_fixed

    # Only what is declared (and TA_INDICATORS) ...
    only = columns_to_compute(declared, default_set=False, more=("ema_200",))
    assert only == ("bb_upper", "bb_lower", "bb_percent_b", "ema_200", "rsi_14", "rsi_7")
    # ... or the whole fixed set next to the declared ones, each column once.
    full = columns_to_compute(declared, default_set=True)
    assert full == (*COLUMNS, "rsi_14", "rsi_7") and len(set(full)) == len(full)
    # A strategy without a declaration may read any fixed column: the fixed set stays.
    (tmp_path / "anything.py").write_text(
        "from agents.strategy.api import HOLD, Decision, Strategy\n\n"
        "class Anything(Strategy):\n    def decide(self, history, i):\n        return Decision(HOLD, 0.0, 'hold')\n"
    )
    anything = StrategyInstanceConfig(strategy_id="any", kind=f"{tmp_path / 'anything.py'}:Anything",
                                      symbols=("BTC/USDT",), timeframe="15m")
    with_any = union_of([rsi("rsi-7", 7), anything])
    assert with_any.reads_any_fixed and with_any.by_strategy["any"] is None
    assert columns_to_compute(with_any, default_set=False) == (*COLUMNS, "rsi_7")
    assert columns_to_compute(union_of([rsi("plain", None)]), default_set=False) == ("rsi",)


def test_the_warm_up_of_the_union_is_its_longest_lookback_and_must_fit_the_window() -> None:
    assert max_lookback({"rsi_7", "ema_50", "close"}, PARAMS) == 49
    assert max_lookback({"sma_300"}, PARAMS) == 299
    assert max_lookback((), PARAMS) == 0
    check_window({"sma_500", "rsi"}, PARAMS)  # lookback 499 < window 500: one value per window
    with pytest.raises(ValueError, match=r"indicator sma_501 warms up over 500 candles: the window of 500"):
        check_window({"rsi_7", "sma_501"}, PARAMS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rsi_07", "'rsi_07' is not written canonically; write 'rsi_7'"),
        ("bb_upper_20_2.0", "write 'bb_upper_20_2'"),
        ("rsi_1", "'rsi_1': rsi: period must be within 2..10000, got 1"),
        ("rsi_7_3", "'rsi_7_3': rsi takes 1 parameter"),
        ("macd_26_12_9", "macd: fast \\(26\\) must be < slow \\(12\\)"),
        ("rsx_7", "unknown indicator column 'rsx_7'"),
        ("rsi", "unknown indicator column 'rsi'"),  # a fixed name is not parametrised
        ("sma_fast", "unknown indicator column"),
        ("x" * 70, "longer than 64"),
    ],
)
def test_bad_names_are_refused_saying_why(name: str, message: str) -> None:
    with pytest.raises(IndicatorNameError, match=message):
        parse_column(name)


def test_names_have_one_spelling_and_round_trip() -> None:
    assert canonical_column("rsi", period=7) == "rsi_7"
    assert canonical_column("bb", "bb_lower", period=20, stddev=2) == "bb_lower_20_2"
    assert canonical_column("bb", "bb_lower", period=20, stddev=2.5) == "bb_lower_20_2.5"
    assert canonical_column("donchian", "donchian_upper", period=20) == "donchian_upper_20"
    assert IndicatorSpec.of("macd", fast=5, slow=35, signal=5).columns() == ("macd_5_35_5", "macd_signal_5_35_5", "macd_hist_5_35_5")
    for name in ("rsi_7", "macd_signal_12_26_9", "bb_percent_b_20_2", "stoch_k_14_3_3", "donchian_middle_55", "ema_200"):
        spec, output = parse_column(name)
        assert spec.column(output) == name
    assert parse_column("rsi_7")[0] == IndicatorSpec.of("rsi", period=7)  # equal specs: computed once
    with pytest.raises(IndicatorNameError, match="rsi takes period; got length"):
        IndicatorSpec.of("rsi", length=7)


def test_the_agent_decides_its_columns_from_the_strategy_config_and_refuses_what_its_window_cannot_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.technical_analysis import TechnicalAnalysisAgent, TechnicalAnalysisSettings

    config = tmp_path / "strategies.toml"
    config.write_text(
        '[[strategies]]\nid = "fast"\nkind = "rsi"\n[strategies.params]\nperiod = 7\n\n'
        '[[strategies]]\nid = "slow"\nkind = "rsi"\n[strategies.params]\nperiod = 600\n'
    )

    def agent(**env: str) -> TechnicalAnalysisAgent:
        settings = TechnicalAnalysisSettings(_env_file=None, STRATEGY_CONFIG=str(config), **env)  # type: ignore[call-arg]
        return TechnicalAnalysisAgent(settings)

    with pytest.raises(ValueError, match=r"indicator rsi_600 warms up over 600 candles: the window of 500 candles \(TA_WINDOW\) must exceed it; declared by: slow$"):
        agent()._decide_columns()
    assert agent(TA_WINDOW="700", TA_DEFAULT_SET="false", TA_INDICATORS="ema_20")._decide_columns() == ("ema_20", "rsi_600", "rsi_7")
    # An override the strategy agent would apply is applied here too: the same union.
    monkeypatch.setenv("STRATEGY__SLOW__ENABLED", "false")
    assert agent(TA_DEFAULT_SET="false")._decide_columns() == ("rsi_7",)
    assert agent(TA_FROM_STRATEGIES="false")._decide_columns() == COLUMNS

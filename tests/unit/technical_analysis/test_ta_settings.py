"""TA_* settings become validated IndicatorParams; bad values are refused with the variable names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.technical_analysis import AGENT_CLASS, TechnicalAnalysisSettings
from agents.technical_analysis.indicators import IndicatorParams


def test_defaults_are_the_indicator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in IndicatorParams.model_fields:
        monkeypatch.delenv(f"TA_{name.upper()}", raising=False)
    assert TechnicalAnalysisSettings(_env_file=None).indicator_params() == IndicatorParams()
    assert AGENT_CLASS.settings_class is TechnicalAnalysisSettings


def test_every_param_has_a_ta_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TA_RSI_PERIOD", "7")
    monkeypatch.setenv("TA_BB_STDDEV", "2.5")
    monkeypatch.setenv("TA_WINDOW", "800")
    params = TechnicalAnalysisSettings(_env_file=None).indicator_params()
    assert (params.rsi_period, params.bb_stddev, params.window) == (7, 2.5, 800)
    assert set(TechnicalAnalysisSettings.model_fields) >= {f"ta_{name}" for name in IndicatorParams.model_fields}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TA_SMA_FAST": "60"}, "TA_SMA_FAST (60) must be < TA_SMA_SLOW (50)"),
        ({"TA_WINDOW": "40"}, "TA_WINDOW (40) must exceed the longest indicator warm-up (49 candles)"),
        ({"TA_RSI_PERIOD": "1"}, "TA_RSI_PERIOD: Input should be greater than or equal to 2"),
    ],
)
def test_bad_values_are_refused_at_start_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        TechnicalAnalysisSettings(_env_file=None)
    assert message in str(caught.value)

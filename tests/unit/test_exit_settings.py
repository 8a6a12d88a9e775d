"""ExitSettings and ``--exits`` parsing: valid spellings and clear errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol.exits import ExitSettings, ExitSettingsError, parse_exits


def test_parses_the_documented_example() -> None:
    parsed = parse_exits("stop_loss=0.03,take_profit=0.06,trailing_stop=0.02,time_stop=48")
    assert parsed == ExitSettings(stop_loss=Decimal("0.03"), take_profit=Decimal("0.06"),
                                  trailing_stop=Decimal("0.02"), time_stop=48)
    assert parsed.describe() == "stop_loss=0.03,take_profit=0.06,trailing_stop=0.02,time_stop=48"
    assert parse_exits(" STOP_LOSS_ATR = 2 ").stop_loss_atr == Decimal(2)
    assert not parse_exits("").enabled and parse_exits("time_stop=1").enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stop_loss", "expected KEY=VALUE"),
        ("stop_los=0.03", "unknown exit 'stop_los'"),
        ("stop_loss=abc", "stop_loss='abc' is not a number"),
        ("stop_loss=1.5", "stop_loss: Input should be less than 1"),
        ("stop_loss=0", "stop_loss: Input should be greater than 0"),
        ("take_profit=-0.1", "take_profit: Input should be greater than 0"),
        ("time_stop=2.5", "time_stop='2.5' is not a whole number"),
        ("time_stop=0", "time_stop: Input should be greater than or equal to 1"),
        ("stop_loss=0.1,stop_loss=0.2", "stop_loss given twice"),
        ("stop_loss=0.1,stop_loss_atr=2", "not both"),
        ("trailing_stop=nan", "trailing_stop"),
    ],
)
def test_errors_name_the_bad_item(text: str, message: str) -> None:
    with pytest.raises(ExitSettingsError, match="--exits") as caught:
        parse_exits(text)
    assert message in str(caught.value)

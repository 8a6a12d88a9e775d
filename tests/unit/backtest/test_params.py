"""--params and --grid parsing."""

from __future__ import annotations

import pytest

from agents.backtest.params import ParamError, parse_grid, parse_params


def test_params_pairs_and_json() -> None:
    assert parse_params("fast=10,slow=30") == {"fast": 10, "slow": 30}
    assert parse_params(' {"fast": 10, "preset": "aggressive"} ') == {"fast": 10, "preset": "aggressive"}
    assert parse_params("oversold=27.5,enabled=true,preset=default") == {
        "oversold": 27.5,
        "enabled": True,
        "preset": "default",
    }
    assert parse_params(None) == {} and parse_params("") == {}


@pytest.mark.parametrize("text", ["fast", "fast=", "=3", "fast=1,fast=2", "{not json", "[1, 2]"])
def test_bad_params(text: str) -> None:
    with pytest.raises(ParamError):
        parse_params(text)


def test_grid_ranges_include_the_stop() -> None:
    grid = parse_grid("fast=5:20:5,slow=20:60:10")
    assert len(grid) == 4 * 5
    assert grid[0] == {"fast": 5, "slow": 20}
    assert grid[-1] == {"fast": 20, "slow": 60}
    assert {g["fast"] for g in grid} == {5, 10, 15, 20}


def test_grid_decimal_steps_do_not_drift() -> None:
    assert [g["x"] for g in parse_grid("x=0.1:0.3:0.1,y=7")] == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("text", ["", "fast=5:1:1", "fast=1:5:0", "fast=1:5", "fast=a:b:c"])
def test_bad_grid(text: str) -> None:
    with pytest.raises(ParamError):
        parse_grid(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[1,2]", "--params must be a JSON object such as {\"fast\": 10, \"slow\": 30}, not a JSON array"),
        ("[1", "--params is not valid JSON ("),
        ('{"fast": 10', "--params is not valid JSON ("),
    ],
)
def test_json_looking_params_are_read_as_json(text: str, says: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_params(text)
    assert str(caught.value).startswith(says) and "name=value" not in str(caught.value)
    assert "JSON object" in str(caught.value)

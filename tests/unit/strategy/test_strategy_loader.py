"""User strategies from a file or a module (decision 0021): loaded through the one build path,
as capable as a built-in kind, and every way a file can be broken is an error naming its file
and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from agents.strategy.api import (
    BUY,
    HOLD,
    SELL,
    StrategyConfigError,
    StrategyLoadError,
    StrategyRuntimeError,
    load_strategy,
    make_history,
)
from agents.strategy.config import load_strategy_config
from agents.strategy.strategies import RsiStrategy, build_strategy, on_change, run_strategy

# A user strategy written only against the documented API: RSI thresholds of its own.
USER_STRATEGY = '''
from pydantic import Field

from agents.strategy.api import BUY, HOLD, SELL, Decision, Strategy, StrategyParams


class LowHighParams(StrategyParams):
    low: float = Field(default=30.0, gt=0, lt=100)
    high: float = Field(default=70.0, gt=0, lt=100)


class LowHigh(Strategy):
    Params = LowHighParams
    COLUMNS = frozenset({"rsi"})

    def decide(self, history, i):
        rsi = history.col("rsi").item(i)
        if rsi != rsi:
            return Decision(HOLD, 0.0, "warming up", {"rsi": None})
        if rsi < self.params.low:
            return Decision(BUY, 0.8, f"rsi {rsi:.1f} low", {"rsi": rsi})
        if rsi > self.params.high:
            return Decision("sell", 0.6, f"rsi {rsi:.1f} high", {"rsi": rsi})
        return Decision(HOLD, 0.0, "inside", {"rsi": rsi})
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


RSI = [None, 25.0, 50.0, 75.0, 45.0, 20.0]


def test_a_user_file_strategy_decides_like_the_built_in_kind_with_the_same_rules(tmp_path: Path) -> None:
    write(tmp_path, "low_high.py", USER_STRATEGY)
    user = build_strategy(f"{tmp_path / 'low_high.py'}:LowHigh", {"low": 30, "high": 70})
    builtin = RsiStrategy({"oversold": 30, "overbought": 70})
    history = make_history(rsi=RSI)
    sides = [d.side for d in run_strategy(user, history)]
    assert sides == [d.side for d in run_strategy(builtin, history)] == [HOLD, BUY, HOLD, SELL, HOLD, BUY]
    # A side given as text is normalised to the enum; the on-change rule sees the same sides.
    assert [i for i, _ in on_change(run_strategy(user, history))] == [0, 1, 2, 3, 4, 5]
    assert user.kind == "LowHigh" and user.indicator_columns == frozenset({"rsi"})
    assert user.params.model_dump() == {"low": 30.0, "high": 70.0}


def test_a_module_reference_and_a_relative_path_from_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mystrats"
    package.mkdir()
    write(package, "__init__.py", "")
    write(package, "lowhigh.py", USER_STRATEGY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_strategy("mystrats.lowhigh:LowHigh").decide(make_history(rsi=[10.0]), 0).side is BUY

    conf_dir = tmp_path / "conf"
    (conf_dir / "sub").mkdir(parents=True)
    write(conf_dir / "sub", "mine.py", USER_STRATEGY)
    config = write(conf_dir, "strategies.toml", """
        [[strategies]]
        id = "mine"
        kind = "sub/mine.py:LowHigh"
        [strategies.params]
        low = 40

        [[strategies]]
        id = "vote"
        kind = "combined"
        [strategies.params]
        members = [{ kind = "sub/mine.py:LowHigh", weight = 1.0 }, { kind = "rsi" }]
    """)
    monkeypatch.chdir(tmp_path)  # not the config's folder: the path is read from there anyway
    mine, vote = load_strategy_config(config)
    assert mine.build().decide(make_history(rsi=[35.0]), 0).side is BUY
    # A combined strategy's member may be a user strategy, resolved from the same folder.
    decision = vote.build().decide(make_history(rsi=[10.0]), 0)
    assert decision.side is BUY and decision.used["LowHigh.vote"] == 0.8

    # The same in YAML, from another folder.
    yaml_config = write(tmp_path, "strategies.yaml", """
        strategies:
          - id: mine-yaml
            kind: conf/sub/mine.py:LowHigh
            params: {high: 60}
    """)
    (mine_yaml,) = load_strategy_config(yaml_config)
    assert mine_yaml.build().decide(make_history(rsi=[65.0]), 0).side is SELL


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from agents.strategy.api import Strategy\n\nclass X(Strategy)\n    pass\n", r"bad\.py:3: syntax error"),
        ("import os\nimport no_such_module_for_tradebus\n", r"bad\.py:2: raised while loading: ModuleNotFoundError"),
        ("x = 1\n\n\ny = 1 / 0\n", r"bad\.py:4: raised while loading: ZeroDivisionError"),
        ("class X:\n    pass\n", r"bad\.py:1: class X does not derive from agents\.strategy\.api\.Strategy"),
        ("from agents.strategy.api import Strategy\n\n\nclass X(Strategy):\n    pass\n", r"bad\.py:4: class X does not implement decide"),
        ("from agents.strategy.api import Strategy\nclass Y(Strategy):\n    def decide(self, h, i): ...\n",
         r"bad\.py: no class 'X' \(strategy classes in it: Y\)"),
        ("from agents.strategy.api import Strategy\n\nclass X(Strategy):\n    COLUMNS = frozenset({'rsi_1'})\n"
         "    def decide(self, h, i): ...\n", r"bad\.py:3: X\.COLUMNS declares a bad indicator: 'rsi_1': rsi: period must be within 2\.\.10000, got 1"),
        ("from agents.strategy.api import Strategy\n\nclass X(Strategy):\n    COLUMNS = frozenset({'rsx_7'})\n"
         "    def decide(self, h, i): ...\n", r"bad\.py:3: X\.COLUMNS declares a bad indicator: unknown indicator column 'rsx_7'"),
        ("from agents.strategy.api import Strategy\n\nclass X(Strategy):\n    Params = dict\n    def decide(self, h, i): ...\n",
         r"bad\.py:3: X\.Params must be a class derived from StrategyParams"),
        ("from agents.strategy.api import Strategy\n\nclass X(Strategy):\n    def __init__(self, params):\n"
         "        super().__init__(params)\n        raise RuntimeError('no')\n    def decide(self, h, i): ...\n",
         r"bad\.py:6: X\(\.\.\.\) raised: RuntimeError: no"),
    ],
    ids=["syntax", "import", "exception", "wrong-base", "abstract", "missing-class", "columns", "unknown-column", "params-model", "init"],
)
def test_a_broken_file_is_an_error_naming_the_file_and_line(tmp_path: Path, source: str, expected: str) -> None:
    path = write(tmp_path, "bad.py", source)
    with pytest.raises(StrategyLoadError, match=expected) as caught:
        build_strategy(f"{path}:X")
    assert caught.value.file == str(path)
    assert str(path) in str(caught.value)


def test_missing_files_modules_and_bad_parameters_say_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(StrategyLoadError, match=r"nope\.py: strategy file not found"):
        build_strategy(f"{tmp_path / 'nope.py'}:X")
    with pytest.raises(StrategyLoadError, match="no module 'no_such_pkg_tb.mod'.*PYTHONPATH"):
        build_strategy("no_such_pkg_tb.mod:X")
    with pytest.raises(StrategyLoadError, match="must be path/to/file.py:ClassName"):
        build_strategy("file.py:")
    path = write(tmp_path, "low_high.py", USER_STRATEGY)
    # Invalid parameters name the class's line.
    with pytest.raises(StrategyConfigError, match=r"low_high\.py:11: LowHigh: bad parameters .*low: Input should be less than 100"):
        build_strategy(f"{path}:LowHigh", {"low": 120})
    with pytest.raises(StrategyConfigError, match="Extra inputs are not permitted"):
        build_strategy(f"{path}:LowHigh", {"lwo": 20})


def test_decide_errors_and_invalid_decisions_name_the_file_line_and_candle(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.py", '''
        from agents.strategy.api import BUY, HOLD, Decision, Strategy


        class Raises(Strategy):
            def decide(self, history, i):
                if i == 2:
                    return history.col("rsi").item(i) / 0.0
                return Decision(HOLD, 0.0, "fine")


        class TooSure(Strategy):
            def decide(self, history, i):
                return Decision(BUY, 1.5, "very sure")


        class NotADecision(Strategy):
            def decide(self, history, i):
                return ("BUY", 1.0, "tuple")
    ''')
    history = make_history(rsi=[1.0, 2.0, 3.0])
    raises = build_strategy(f"{path}:Raises")
    assert raises.decide(history, 1).side is HOLD
    with pytest.raises(StrategyRuntimeError, match=r"odd\.py:7: Raises\.decide at row 2 \(candle 2021-01-01T00:30:00\+00:00\): raised ZeroDivisionError"):
        raises.decide(history, 2)
    with pytest.raises(StrategyRuntimeError, match=r"odd\.py:12: TooSure\.decide at row 0 .*confidence 1\.5 is not a number in \[0, 1\]"):
        build_strategy(f"{path}:TooSure").decide(history, 0)
    with pytest.raises(StrategyRuntimeError, match=r"returned tuple, expected Decision"):
        build_strategy(f"{path}:NotADecision").decide(history, 0)


def test_a_strategy_reading_a_column_it_did_not_declare_is_refused_where_it_was_not_computed() -> None:
    # The backtester computes only the declared columns: a read of another must fail, not see NaN
    # (live, the column would hold values, and the two runs would disagree).
    from agents.strategy.history import IndicatorHistory

    history = IndicatorHistory.from_columns([0, 1], [1.0, 2.0], {"rsi": np.array([1.0, 2.0])}, readable={"rsi"})
    assert history.col("rsi").tolist() == [1.0, 2.0] and history.col("close").tolist() == [1.0, 2.0]
    with pytest.raises(KeyError, match="column 'atr' was not computed: the strategy declares it reads only close, rsi"):
        history.col("atr")
    assert np.isnan(IndicatorHistory.from_columns([0, 1], [1.0, 2.0]).col("atr")).all()  # no declaration: any column

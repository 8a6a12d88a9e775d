"""``tradebus strategy new NAME``: a commented starting strategy and its pytest test.

The strategy is written against ``agents.strategy.api`` only (what any user strategy may use),
and the test loads it the way the backtester and the strategy agent do (``load_strategy`` with a
file reference), so the generated pair passes as written and keeps checking the file as it is
changed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

__all__ = ["TemplateError", "class_name", "module_name", "write_strategy"]

_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class TemplateError(ValueError):
    """A NAME that cannot be a module, or files that already exist."""


def module_name(name: str) -> str:
    """'MyRsi' / 'my-rsi' -> 'my_rsi' (the file's stem)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").lower()
    return re.sub(r"_+", "_", snake).strip("_")


def class_name(name: str) -> str:
    """'my_rsi' / 'my-rsi' / 'MyRsi' -> 'MyRsi'."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", module_name(name)) if part)


_STRATEGY: Final = '''"""{cls}: a tradebus strategy (written by `tradebus strategy new {name}`; now yours).

What it does: BUY when the RSI (of ``period`` candles: it declares ``rsi_<period>``) climbs back
above ``oversold`` (it was below on the previous candle), SELL when it falls back below
``overbought``; HOLD otherwise. Change it freely: the contract is in agents/strategy/api.py.

    backtest:  tradebus backtest --strategy {path}:{cls} --params oversold=25
    test:      pytest {test_path}
    live:      in the strategy config (STRATEGY_CONFIG; a relative path is read from the
               config file's folder):

                   [[strategies]]
                   id = "{id}"
                   kind = "{file}:{cls}"
                   [strategies.params]
                   oversold = 30
"""

from __future__ import annotations

from pydantic import Field, model_validator

from agents.strategy.api import BUY, HOLD, SELL, Decision, IndicatorHistory, Strategy, StrategyParams, indicator


class {cls}Params(StrategyParams):
    """The parameters, validated from the config's [strategies.params], --params and --grid.
    Frozen, and an unknown name is refused (a typo cannot pass silently)."""

    period: int = Field(default=14, ge=2, le=400, description="RSI period: the strategy reads rsi_<period>")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="BUY when the RSI rises back above this")
    overbought: float = Field(default=70.0, gt=0, lt=100, description="SELL when the RSI falls back below this")

    @model_validator(mode="after")
    def _ordered(self) -> {cls}Params:
        if not self.oversold < self.overbought:
            raise ValueError(f"oversold ({{self.oversold:g}}) must be below overbought ({{self.overbought:g}})")
        return self


class {cls}(Strategy):
    """RSI leaving its extreme zones."""

    Params = {cls}Params
    # The indicators decide() reads. Fixed ones are named as in agents.strategy.api.INDICATORS
    # (rsi, macd, bb_lower, ... with the analysis agent's TA_* periods); any other is named with
    # its parameters: "rsi_7", "ema_50", "atr_14", "macd_hist_12_26_9", "bb_lower_20_2",
    # "donchian_upper_20" (indicator("rsi", period=7) spells one for you; every family is in
    # protocol/indicators.py). The analysis agent computes what the enabled strategies declare;
    # a backtest computes only these and refuses to read others. A fixed declaration is a class
    # attribute: COLUMNS = frozenset({{"rsi_7", "ema_50"}}). Here the name depends on a
    # parameter, so the property below declares it once the parameters are validated.

    @property
    def indicator_columns(self) -> frozenset[str]:
        return frozenset({{indicator("rsi", period=self.params.period)}})

    @property
    def lookback(self) -> int:
        # decide(history, i) reads row i - 1 as well: one candle back.
        return 1

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        """The decision for candle i, reading rows <= i only (never the future), without state
        or I/O: the backtester and the live agent must get the same answer for the same candle."""
        name = indicator("rsi", period=self.params.period)  # "rsi_14" by default
        rsi = history.col(name)  # a float64 numpy column, NaN while warming up
        now = rsi.item(i)
        before = rsi.item(i - 1) if i > 0 else float("nan")
        used = {{name: None if now != now else now, f"{{name}}_prev": None if before != before else before}}
        if now != now or before != before:  # NaN != NaN: not enough candles yet
            return Decision(HOLD, 0.0, f"warming up: {{name}} not available", used)
        low, high = self.params.oversold, self.params.overbought
        if before < low <= now:
            # Confidence in [0, 1]: 0.5 at the threshold, more the further the RSI was below it.
            return Decision(BUY, min(1.0, 0.5 + (low - before) / low), f"RSI {{now:.1f}} rose above {{low:g}}", used)
        if before > high >= now:
            return Decision(SELL, min(1.0, 0.5 + (before - high) / (100 - high)), f"RSI {{now:.1f}} fell below {{high:g}}", used)
        return Decision(HOLD, 0.0, f"RSI {{now:.1f}}: no crossing", used)
'''

_TEST: Final = '''"""Tests of {cls} ({file}); run with: pytest {test_path}"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.strategy.api import BUY, HOLD, SELL, StrategyConfigError, load_strategy, make_history

# Loaded the way `tradebus backtest` and the strategy agent load it: a broken file fails here.
REFERENCE = f"{{Path(__file__).with_name('{file}')}}:{cls}"


def sides(strategy, history):  # type: ignore[no-untyped-def]
    return [strategy.decide(history, i).side for i in range(len(history))]


def test_buys_when_the_rsi_rises_out_of_oversold_and_sells_when_it_falls_out_of_overbought() -> None:
    strategy = load_strategy(REFERENCE)
    history = make_history(rsi_14=[None, 25.0, 35.0, 50.0, 75.0, 65.0, 60.0])
    assert sides(strategy, history) == [HOLD, HOLD, BUY, HOLD, HOLD, SELL, HOLD]
    decision = strategy.decide(history, 2)
    assert 0.5 <= decision.confidence <= 1.0 and decision.used == {{"rsi_14": 35.0, "rsi_14_prev": 25.0}}


def test_parameters_change_the_thresholds_and_the_indicator_and_are_validated() -> None:
    history = make_history(rsi_14=[18.0, 22.0], rsi_7=[50.0, 50.0])
    assert sides(load_strategy(REFERENCE, {{"oversold": 20}}), history) == [HOLD, BUY]
    assert sides(load_strategy(REFERENCE), history) == [HOLD, HOLD]
    # The period is the indicator it declares (what the analysis agent computes) and reads.
    assert load_strategy(REFERENCE).indicator_columns == {{"rsi_14"}}
    assert load_strategy(REFERENCE, {{"period": 7}}).indicator_columns == {{"rsi_7"}}
    assert sides(load_strategy(REFERENCE, {{"period": 7, "oversold": 20}}), history) == [HOLD, HOLD]
    with pytest.raises(StrategyConfigError, match="oversold"):
        load_strategy(REFERENCE, {{"oversold": 80, "overbought": 70}})


def test_a_decision_never_depends_on_later_candles() -> None:
    strategy = load_strategy(REFERENCE)
    rsi = [50.0, 25.0, 35.0, 80.0, 60.0, 20.0, 40.0]
    full = sides(strategy, make_history(rsi_14=rsi))
    for i in range(len(rsi)):
        changed = rsi[: i + 1] + [100.0 - v for v in rsi[i + 1 :]]
        assert strategy.decide(make_history(rsi_14=changed), i).side == full[i]
'''


def write_strategy(name: str, folder: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``<folder>/<module>.py`` and ``<folder>/test_<module>.py``; their paths."""
    if not _NAME.fullmatch(name):
        raise TemplateError(f"{name!r}: use letters, digits, '_' and '-', starting with a letter (e.g. my_rsi)")
    stem, cls = module_name(name), class_name(name)
    strategy_path, test_path = folder / f"{stem}.py", folder / f"test_{stem}.py"
    existing = [str(p) for p in (strategy_path, test_path) if p.exists()]
    if existing and not force:
        raise TemplateError(f"{', '.join(existing)} already exist(s); choose another NAME or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    values = {
        "name": name, "cls": cls, "file": strategy_path.name, "id": stem.replace("_", "-"),
        "path": strategy_path, "test_path": test_path,
    }
    strategy_path.write_text(_STRATEGY.format(**values), encoding="utf-8")
    test_path.write_text(_TEST.format(**values), encoding="utf-8")
    return strategy_path, test_path

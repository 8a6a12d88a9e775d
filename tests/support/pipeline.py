"""The pipeline computed in process: what the agents must publish for a given list of candles."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from agents.strategy.config import load_strategy_config
from agents.strategy.history import IndicatorHistory
from agents.strategy.signals import build_signal
from agents.strategy.strategies import on_change, run_strategy
from agents.technical_analysis.indicators import IndicatorParams, compute_columns, extra_at, indicators_at, rolling_columns
from protocol import Candle, IndicatorSnapshot, Signal

__all__ = ["expected_signals", "snapshots_of"]


def snapshots_of(candles: list[Candle], columns: Collection[str] | None = None) -> list[IndicatorSnapshot]:
    """The analysis agent's snapshots of these candles, with indicators by ``compute_columns``
    over exactly them (what a backtest of the same candles without warm-up sees); ``columns``:
    what to compute (None: the fixed set), parametrised ones in ``extra``."""
    computed = compute_columns(
        [c.open_time for c in candles],
        *(np.array([float(getattr(c, f)) for c in candles]) for f in ("open", "high", "low", "close", "volume")),
        IndicatorParams(),
        only=columns,
    )
    return [
        IndicatorSnapshot.caused_by(
            candle, source="technical_analysis", exchange=candle.exchange, symbol=candle.symbol,
            timeframe=candle.timeframe, candle_time=candle.open_time, close=candle.close,
            indicators=indicators_at(computed, i), extra=extra_at(computed, i),
        )
        for i, candle in enumerate(candles)
    ]


def expected_signals(candles: list[Candle]) -> list[Signal]:
    """The analysis (as the live agent computes it) and every configured strategy, in process."""
    params = IndicatorParams()
    columns = rolling_columns(
        [c.open_time for c in candles],
        *(np.array([float(getattr(c, f)) for c in candles]) for f in ("open", "high", "low", "close", "volume")),
        params,
    )
    history = IndicatorHistory.from_columns([c.open_time for c in candles], [float(c.close) for c in candles], columns)
    out = []
    for config in load_strategy_config():
        for i, decision in on_change(run_strategy(config.build(), history)):
            candle = candles[i]
            snapshot = IndicatorSnapshot.caused_by(
                candle, source="technical_analysis", exchange=candle.exchange, symbol=candle.symbol,
                timeframe=candle.timeframe, candle_time=candle.open_time, close=candle.close,
                indicators=indicators_at(columns, i),
            )
            out.append(build_signal(snapshot, strategy_id=config.strategy_id, kind=config.kind, decision=decision))
    return out

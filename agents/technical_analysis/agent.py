"""The technical analysis agent: candles → rolling window → indicators → InfluxDB → the bus.

What it computes (decision 0022): the union of the indicator columns the enabled strategies of
``STRATEGY_CONFIG`` declare (built as the strategy agent builds them), the whole fixed set
unless ``TA_DEFAULT_SET=false`` (and whenever a strategy declares nothing, i.e. may read any
fixed column), and ``TA_INDICATORS``. It is decided once at start; a changed config needs a
restart, as for the strategy agent.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import timedelta
from typing import Final

from agents.runtime import Agent
from agents.strategy.api import StrategyConfigError
from agents.strategy.declared import Declared, declared_by_config
from agents.technical_analysis.indicators import (
    COLUMNS,
    IndicatorParams,
    WindowTooShort,
    check_window,
    compute_columns,
    extra_at,
    indicators_at,
)
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.window import AddOutcome, CandleWindow, WindowView
from infra.bus import Delivery, Topology
from infra.influx import InfluxPriceStore, from_settings
from infra.settings import Settings
from protocol import Candle, IndicatorSnapshot, Message, timeframe_seconds

__all__ = ["TechnicalAnalysisAgent", "columns_to_compute", "load_history", "snapshot_for"]

SeriesKey = tuple[str, str, str]  # (exchange, symbol, timeframe)

# Widening time spans tried when loading a window from InfluxDB: a series with gaps needs more
# than `count` candle lengths to hold `count` candles. Fewer found over the widest span means
# the series starts there.
_SPAN_FACTORS: Final = (1, 4, 16)
_ONE_MS: Final = timedelta(milliseconds=1)
_DAY_SECONDS: Final = 86_400


def columns_to_compute(declared: Declared, *, default_set: bool, more: Collection[str] = ()) -> tuple[str, ...]:
    """The columns the agent computes: the fixed set (when ``default_set`` or a strategy may read
    any fixed column) or just the declared fixed ones, plus every declared parametrised one and
    ``more``; fixed ones in protocol order, then the others sorted."""
    wanted = set(declared.columns) | set(more)
    if default_set or declared.reads_any_fixed:
        wanted |= set(COLUMNS)
    wanted.discard("close")
    return (*(name for name in COLUMNS if name in wanted), *sorted(wanted - set(COLUMNS)))


def snapshot_for(
    candle: Candle, view: WindowView, params: IndicatorParams, *, source: str, columns: Collection[str] | None = None
) -> IndicatorSnapshot:
    """The snapshot of ``candle`` computed over ``view`` (its window, ending at it): ``columns``
    (None: the fixed set); the fixed ones in ``indicators`` (null when not computed), the
    parametrised ones with a value in ``extra``.

    Its ids derive from the candle's id only (``caused_by`` without id_parts; the InfluxDB
    store re-derives them the same way), so a redelivered candle yields the same message.
    """
    computed = compute_columns(*view.columns(), params, only=columns)
    return IndicatorSnapshot.caused_by(
        candle,
        source=source,
        exchange=candle.exchange,
        symbol=candle.symbol,
        timeframe=candle.timeframe,
        candle_time=candle.open_time,
        close=candle.close,
        indicators=indicators_at(computed, -1),
        extra=extra_at(computed, -1),
    )


async def load_history(store: InfluxPriceStore, candle: Candle, count: int) -> tuple[list[Candle], bool]:
    """The last ``count`` stored candles of ``candle``'s series with open time <= its own,
    oldest first, and whether that is the whole stored history (fewer than ``count``)."""
    end = candle.open_time + _ONE_MS
    length = timedelta(seconds=timeframe_seconds(candle.timeframe))
    found: list[Candle] = []
    for factor in _SPAN_FACTORS:
        found = await store.candles_between(
            candle.exchange, candle.symbol, candle.timeframe, end - length * count * factor, end
        )
        if len(found) >= count:
            return found[-count:], False
    return found, True


def _moved_on_without_us(window: CandleWindow, candle: Candle) -> bool:
    """Whether ``candle`` is newer than the candle after the newest one held (a gap)."""
    newest = window.newest
    step = timedelta(seconds=timeframe_seconds(candle.timeframe))
    return newest is not None and candle.open_time > newest + step


class TechnicalAnalysisAgent(Agent):
    """Consumes closed candles, keeps a rolling window per series, computes the indicators with
    TA-Lib, writes each snapshot to InfluxDB and then publishes it on
    analysis.indicators.{symbol}.{timeframe}."""

    name = "technical_analysis"
    settings_class = TechnicalAnalysisSettings

    def __init__(self, settings: Settings, topology: Topology | None = None) -> None:
        super().__init__(settings, topology)
        self.params = (
            settings.indicator_params() if isinstance(settings, TechnicalAnalysisSettings) else IndicatorParams()
        )
        self.columns: tuple[str, ...] = COLUMNS  # decided in setup, from the strategies' declarations
        self.store = from_settings(settings)
        self.windows: dict[SeriesKey, CandleWindow] = {}
        self.snapshots_published = 0
        self.duplicates = 0
        self.skipped = 0

    async def setup(self) -> None:
        try:
            self.columns = self._decide_columns()
        except (StrategyConfigError, ValueError) as exc:
            self.fail(f"indicators to compute refused: {exc}")
            return
        await self.store.ensure_database()
        await self.bus.consume_group(f"{self.bus.topology.exchange}.technical_analysis.candles", self.on_candle,
                                     accepts=(Candle,))
        self.log.info("indicator parameters", **self.params.model_dump())

    def _decide_columns(self) -> tuple[str, ...]:
        """What to compute (module docstring); refuses a column whose warm-up exceeds the window,
        naming the strategies that declare it."""
        settings = self.settings
        if not isinstance(settings, TechnicalAnalysisSettings):
            return COLUMNS
        declared = Declared()
        if settings.ta_from_strategies:
            declared = declared_by_config(
                settings.strategy_config, environ=os.environ,
                default_symbols=settings.symbols, default_timeframe=settings.timeframe,
            )
        for strategy_id, reason in sorted(declared.broken.items()):
            self.log.warning("strategy left out of the indicator union (the strategy agent reports it broken)",
                             strategy_id=strategy_id, reason=reason)
        columns = columns_to_compute(declared, default_set=settings.ta_default_set, more=settings.ta_indicators)
        try:
            check_window(columns, self.params)
        except WindowTooShort as exc:
            by = ", ".join(declared.declared_by(exc.column)) or "TA_INDICATORS"
            raise ValueError(f"{exc}; declared by: {by}") from None
        self.log.info("indicators to compute", columns=list(columns), parametrised=sorted(declared.parametrised),
                      strategies=sorted(declared.by_strategy), default_set=settings.ta_default_set)
        return columns

    async def teardown(self) -> None:
        await self.store.close()

    def health_problems(self) -> list[str]:
        if not self.store.healthy:
            return [f"influxdb unreachable: {self.store.last_error}"]
        return []

    def heartbeat_detail(self) -> dict[str, str]:
        return {
            "windows": str(len(self.windows)),
            "snapshots_published": str(self.snapshots_published),
            "duplicates": str(self.duplicates),
            "candles_skipped": str(self.skipped),
            "indicators": str(len(self.columns)),
        }

    async def on_candle(self, message: Message, delivery: Delivery) -> None:
        """One closed candle: compute its snapshot, store it, then publish it.

        An InfluxDB or bus failure raises, so the bus retries the candle; the retry is a
        duplicate for the window and republishes the identical snapshot.
        """
        if not isinstance(message, Candle):  # the queue accepts only candles
            raise TypeError(f"expected a Candle, got {type(message).__name__}")
        candle = message
        key: SeriesKey = (candle.exchange, candle.symbol, candle.timeframe)
        window = self.windows.get(key)
        warmed_now = window is None or _moved_on_without_us(window, candle)
        if window is None or warmed_now:
            # First candle of the series here, or a newer one after a gap: another instance may
            # have handled the candles in between (it held the partition while we stood by), so
            # the window is rebuilt from InfluxDB as on a restart, never appended across the gap.
            window = await self._warm_up(candle)
            self.windows[key] = window
        # Right after a warm-up the candle usually is already held (read from InfluxDB, where
        # data collection stored it): that is no redelivery.
        outcome = window.add(candle)
        view = window.view_ending_at(candle.open_time)
        if isinstance(view, str):
            self.skipped += 1
            self.log.warning(
                "candle skipped", reason=f"{outcome.value}: {view}", symbol=candle.symbol,
                timeframe=candle.timeframe, candle_time=candle.open_time.isoformat(),
                newest=window.newest.isoformat() if window.newest else None,
            )
            return
        if outcome is AddOutcome.DUPLICATE and not warmed_now:
            self.duplicates += 1
        if outcome is AddOutcome.DUPLICATE and view.close[-1] != float(candle.close):
            self.log.warning("candle differs from the one held; the window keeps the first",
                             candle_time=candle.open_time.isoformat(), held=repr(float(view.close[-1])),
                             received=str(candle.close))
        snapshot = snapshot_for(candle, view, self.params, source=self.name, columns=self.columns)
        await self.store.write_indicators([snapshot])
        await self.bus.publish(snapshot)
        self.snapshots_published += 1

    async def _warm_up(self, candle: Candle) -> CandleWindow:
        """A window for a series seen for the first time, filled from InfluxDB up to ``candle``."""
        window = CandleWindow(self.params.window)
        history, complete = await load_history(self.store, candle, window.capacity)
        window.seed(history, complete=complete)
        self.log.info("window warmed up from InfluxDB", symbol=candle.symbol, timeframe=candle.timeframe,
                      candles=len(history), whole_history=complete, until=candle.open_time.isoformat())
        if timeframe_seconds(candle.timeframe) * self.params.window < _DAY_SECONDS:
            self.log.warning("window shorter than a day: the session VWAP is null once the session is "
                             "longer than the window; raise TA_WINDOW", timeframe=candle.timeframe,
                             window=self.params.window)
        return window

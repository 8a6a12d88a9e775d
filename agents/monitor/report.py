"""Reality-check results: each check PASS, WARN or FAIL with its figure; table and JSON views."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from rich.console import Console
from rich.table import Table

__all__ = ["Check", "Report", "Status", "fail", "ok", "render_table", "warn"]


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: what was checked, the verdict, the figure it rests on, and why."""

    group: str
    name: str
    status: Status
    figure: str
    detail: str = ""


def ok(group: str, name: str, figure: object, detail: str = "") -> Check:
    return Check(group, name, Status.PASS, str(figure), detail)


def warn(group: str, name: str, figure: object, detail: str = "") -> Check:
    return Check(group, name, Status.WARN, str(figure), detail)


def fail(group: str, name: str, figure: object, detail: str = "") -> Check:
    return Check(group, name, Status.FAIL, str(figure), detail)


@dataclass(frozen=True)
class Report:
    """All checks of one run; the exit code is non-zero when any check failed."""

    checks: Sequence[Check]
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, groups: Iterable[Iterable[Check]]) -> Report:
        return cls(tuple(check for group in groups for check in group))

    def count(self, status: Status) -> int:
        return sum(1 for check in self.checks if check.status is status)

    @property
    def exit_code(self) -> int:
        return 1 if self.count(Status.FAIL) else 0

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status is Status.FAIL]

    def to_dict(self) -> dict[str, object]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "summary": {status.value: self.count(status) for status in Status},
            "exit_code": self.exit_code,
            "checks": [asdict(check) for check in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def render_table(report: Report, console: Console) -> None:
    """The human view: one row per check, coloured by verdict, and a one-line summary."""
    table = Table(title=f"tradebus reality check — {report.checked_at:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("group", "check", "status", "figure", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(
            check.group, check.name, f"[{_STYLE[check.status]}]{check.status.value}[/]", check.figure, check.detail
        )
    console.print(table)
    summary = ", ".join(f"{report.count(status)} {status.value}" for status in Status)
    console.print(f"result: {summary}; exit code {report.exit_code}")

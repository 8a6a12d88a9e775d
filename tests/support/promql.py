"""What the metrics tests need of PromQL and the exposition format: the metric names an
expression reads, and the series names a scrape (or a registry) offers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT

DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "tradebus-overview.json"
# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords, labels and numbers left out)."""
    text = _RANGE.sub(" ", _GROUPING.sub(" ", _MATCHERS.sub(" ", _STRING.sub(" ", expr))))
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group() in _KEYWORDS:
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent or unit of a number (1e3)
        names.add(match.group())
    return names


def dashboard_exprs(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the Grafana dashboard, rows' nested panels included."""
    found: list[tuple[str, str]] = []

    def walk(panels: Iterable[dict]) -> None:  # type: ignore[type-arg]
        for panel in panels:
            walk(panel.get("panels", []))
            found.extend((panel.get("title", "?"), t["expr"]) for t in panel.get("targets", []) if "expr" in t)

    walk(json.loads(path.read_text())["panels"])
    return found


def series_names(exposition: str) -> set[str]:
    """Every series name a scrape offers, also for families with no sample yet (a labelled
    counter nothing has incremented appears by its HELP/TYPE only)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.update({f"{family.name}_total", f"{family.name}_created"})
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count", "_created"))
        else:
            names.add(family.name)
    return names

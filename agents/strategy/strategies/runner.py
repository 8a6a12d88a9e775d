"""Running a strategy over a whole history, and the on-change rule."""

from __future__ import annotations

from collections.abc import Sequence

from agents.strategy.history import IndicatorHistory
from agents.strategy.api import Decision, Strategy

__all__ = ["is_change", "on_change", "run_strategy"]


def run_strategy(strategy: Strategy, history: IndicatorHistory, start: int = 0, stop: int | None = None) -> list[Decision]:
    """``strategy.decide(history, i)`` for every row i in [start, stop) (default: all rows)."""
    decide = strategy.decide
    end = len(history) if stop is None else min(stop, len(history))
    return [decide(history, i) for i in range(start, end)]


def is_change(previous: Decision | None, current: Decision) -> bool:
    """A decision is published when its side differs from the previous candle's decision.

    HOLD counts as a side: BUY, BUY, HOLD, BUY publishes BUY, HOLD, BUY — a change to HOLD is
    itself a decision worth auditing. The first decision of a series (no previous) is a change.
    """
    return previous is None or previous.side is not current.side


def on_change(decisions: Sequence[Decision], start_index: int = 0) -> list[tuple[int, Decision]]:
    """The (row index, decision) pairs a live agent publishes: only the changes of side."""
    changes: list[tuple[int, Decision]] = []
    previous: Decision | None = None
    for offset, decision in enumerate(decisions):
        if previous is None or previous.side is not decision.side:
            changes.append((start_index + offset, decision))
        previous = decision
    return changes

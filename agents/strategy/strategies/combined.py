"""COMBINED: a weighted vote of member strategies (any kind but combined itself).

Each member votes its side with weight w and its own confidence c. With
B = sum of w*c over BUY votes, S = the same over SELL votes and W = the sum of all weights
(HOLD members included, so they dilute the vote):

* no BUY or SELL vote at all -> HOLD;
* disagreement = min(B, S) / max(B, S) (0 when every directional vote agrees, 1 when BUY and
  SELL are evenly matched); above ``max_disagreement`` -> HOLD "members disagree";
* score = (B - S) / W in [-1, 1]; |score| below ``min_score`` -> HOLD "vote too weak";
* otherwise BUY (score > 0) or SELL, with confidence |score|: 1.0 only when every member
  votes the same way with full confidence.

``used`` carries each member's inputs as "<member>.<name>" and its signed vote
("<member>.vote" = +c for BUY, -c for SELL, 0 for HOLD).

Reads what its members read. Candidate rows for a backtest: the union of the members' (a vote
with no member voting BUY or SELL is a HOLD), when every member has them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from agents.strategy.api import (
    BUY,
    HOLD,
    SELL,
    Decision,
    IndicatorHistory,
    Strategy,
    StrategyConfigError,
    StrategyParams,
)
from agents.strategy.strategies.base import (
    clamp01,
)

__all__ = ["CombinedParams", "CombinedStrategy", "MemberSpec"]


class MemberSpec(StrategyParams):
    """One voter: its strategy kind, weight and parameters."""

    kind: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, le=1000)
    params: dict[str, Any] = Field(default_factory=dict)


class CombinedParams(StrategyParams):
    """Members and the two thresholds of the vote."""

    members: tuple[MemberSpec, ...] = Field(min_length=2, max_length=20)
    min_score: float = Field(default=0.15, ge=0, le=1, description="|weighted vote| needed to trade")
    max_disagreement: float = Field(default=0.25, ge=0, le=1, description="opposing/agreeing vote ratio tolerated")


class CombinedStrategy(Strategy):
    """Weighted vote of other strategies; HOLD when they disagree."""

    kind: ClassVar[str] = "combined"
    Params = CombinedParams

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        # Imported here: the registry imports this module to list it as a kind.
        from agents.strategy.strategies.registry import build_strategy

        # A member is labelled by its kind; a user strategy by its class name (a file path would
        # not fit the 64 characters of a Signal's indicator names).
        names = [spec.kind.rpartition(":")[2].strip() for spec in self.params.members]
        counts = Counter(names)
        seen: Counter[str] = Counter()
        self.members: list[tuple[str, float, Strategy]] = []
        for index, spec in enumerate(self.params.members):
            if spec.kind.strip().lower() == self.kind:
                raise StrategyConfigError(
                    f"bad parameters for strategy kind 'combined': members.{index}: a combined strategy cannot be a member"
                )
            try:
                member = build_strategy(spec.kind, spec.params)
            except StrategyConfigError as exc:
                raise StrategyConfigError(f"bad parameters for strategy kind 'combined': members.{index}: {exc}") from None
            name = names[index]
            seen[name] += 1
            label = name if counts[name] == 1 else f"{name}_{seen[name]}"
            self.members.append((label, spec.weight, member))
        # "<member>.<name>" keys, built once per name: this loop runs on every backtest bar.
        self._keys: dict[str, dict[str, str]] = {label: {} for label, _, _ in self.members}
        self._total_weight = sum(weight for _, weight, _ in self.members)

    @property
    def lookback(self) -> int:
        return max(member.lookback for _, _, member in self.members)

    @property
    def indicator_columns(self) -> frozenset[str] | None:
        needed: set[str] = set()
        for _, _, member in self.members:
            columns = member.indicator_columns
            if columns is None:
                return None
            needed |= columns
        return frozenset(needed)

    def candidate_rows(self, history: IndicatorHistory) -> np.ndarray | None:
        if not self._decides_as(CombinedStrategy):
            return None
        union: np.ndarray | None = None
        for _, _, member in self.members:
            rows = member.candidate_rows(history)
            if rows is None:
                return None
            union = rows if union is None else union | rows
        return union

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        buy = sell = 0.0
        used: dict[str, float | None] = {}
        voters: list[str] = []
        for label, weight, member in self.members:
            decision = member.decide(history, i)
            keys = self._keys[label]
            for name, value in decision.used.items():
                key = keys.get(name)
                if key is None:
                    key = keys[name] = f"{label}.{name}"
                used[key] = value
            vote = keys.get("vote") or keys.setdefault("vote", f"{label}.vote")
            if decision.side is BUY:
                buy += weight * decision.confidence
                used[vote] = decision.confidence
                voters.append(f"{label} BUY {decision.confidence:.2f}")
            elif decision.side is SELL:
                sell += weight * decision.confidence
                used[vote] = -decision.confidence
                voters.append(f"{label} SELL {decision.confidence:.2f}")
            else:
                used[vote] = 0.0
        if not voters:
            return Decision(HOLD, 0.0, "no member votes BUY or SELL", used)
        if buy > 0.0 and sell > 0.0 and min(buy, sell) / max(buy, sell) > self.params.max_disagreement:
            return Decision(HOLD, 0.0, f"members disagree: BUY {buy:.2f} vs SELL {sell:.2f} ({', '.join(voters)})", used)
        score = (buy - sell) / self._total_weight
        if abs(score) < self.params.min_score:
            reason = f"vote {score:+.2f} weaker than {self.params.min_score:g} ({', '.join(voters)})"
            return Decision(HOLD, 0.0, reason, used)
        side = BUY if score > 0.0 else SELL
        return Decision(side, clamp01(abs(score)), f"weighted vote {score:+.2f} ({', '.join(voters)})", used)

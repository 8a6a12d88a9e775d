"""When is a replay run finished? Only when everything it started has been processed.

The data collection process exiting 0 means every candle was stored and published, not that
the pipeline behind it is done. The run is finished when, in addition, every work queue of the
running agents is empty, nothing moved for a quiet period (no agent's consumed count changed,
no new event), every running agent has reported recently (so "quiet" is not "hung"), and every
order has a terminal execution report — or the grace period for open orders ran out (a resting
limit order may legitimately never fill; the reality check reports it). And never while one of
the run's services is unreachable, nor right after it came back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agents.run.progress import Progress


@dataclass(frozen=True)
class Completion:
    finished: bool
    waiting_for: str


def check_completion(
    *,
    collector_done: bool,
    depths: Mapping[str, int],
    progress: Progress,
    running_agents: Collection[str],
    quiet_needed: float,
    now: float,
    open_orders_grace_over: bool,
    outages: Sequence[str] = (),
    recovered_for: float | None = None,
) -> Completion:
    """Pure verdict: finished, or the first thing still being waited for.

    ``outages`` are the services the run cannot reach now (outages.py): nothing is finished while
    a store is down — its messages may be waiting in an agent's retry. ``recovered_for`` is the
    time since the latest outage ended: the agents get a quiet period after it to reconnect."""
    if outages:
        return Completion(False, "waiting for " + "; ".join(outages))
    if recovered_for is not None and recovered_for < quiet_needed:
        return Completion(False, f"service back {recovered_for:.1f}s ago; letting the agents catch up")
    if not collector_done:
        return Completion(False, "replay in progress")
    busy = {queue: depth for queue, depth in depths.items() if depth > 0}
    if busy:
        queue, depth = max(busy.items(), key=lambda item: item[1])
        return Completion(False, f"{sum(busy.values())} messages queued (most in {queue}: {depth})")
    silent = [a for a in running_agents if a not in progress.agents or now - progress.agents[a].received_monotonic > quiet_needed]
    if silent:
        return Completion(False, f"waiting for heartbeats from {', '.join(sorted(silent))}")
    quiet = progress.quiet_for(now)
    if quiet < quiet_needed:
        return Completion(False, f"agents still working (quiet for {quiet:.1f}s of {quiet_needed:.1f}s)")
    open_orders = progress.open_orders
    if open_orders and not open_orders_grace_over:
        return Completion(False, f"{len(open_orders)} orders without a terminal report")
    return Completion(True, "replay fully processed")

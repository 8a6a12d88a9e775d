"""`tradebus run --instances ROLE=N`: how many processes of each agent a run starts.

Instances of a role share its partition queues (decision 0025): each queue has a single active
consumer, the others stand by and take over within seconds when it dies. The first instance is
named like the agent (``strategy``), the next ones ``strategy#2``, ``strategy#3``... so the run
panel and the logs tell them apart while heartbeats and metrics still name the agent.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.runtime.registry import AgentEntry, AgentNotAvailable, resolve

__all__ = ["SINGLE_INSTANCE", "agent_of", "instance_env", "parse_instances", "process_names"]

MAX_INSTANCES = 8
# The replay publishes every candle once: a second replay would publish each candle twice (the
# consumers are idempotent, so nothing would double, but every message would flow twice). Live
# collection is one poller per exchange for the same reason.
SINGLE_INSTANCE = frozenset({"data-collection"})
_SEPARATOR = "#"


def parse_instances(values: Iterable[str]) -> dict[str, int]:
    """``["strategy=2", "risk-manager=2,execution=3"]`` → {cli name: count}; ValueError says what is wrong."""
    counts: dict[str, int] = {}
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            role, sep, number = item.partition("=")
            if not sep:
                raise ValueError(f"--instances takes ROLE=N, got {item!r}")
            try:
                entry = resolve(role)
            except AgentNotAvailable as exc:
                raise ValueError(str(exc)) from None
            try:
                count = int(number)
            except ValueError:
                raise ValueError(f"--instances {item!r}: N must be a whole number") from None
            if not 1 <= count <= MAX_INSTANCES:
                raise ValueError(f"--instances {item!r}: N must be 1..{MAX_INSTANCES}")
            if count > 1 and entry.cli_name in SINGLE_INSTANCE:
                raise ValueError(f"--instances {item!r}: {entry.cli_name} runs once (it publishes each candle once)")
            counts[entry.cli_name] = count
    return counts


def process_names(entry: AgentEntry, count: int) -> list[str]:
    """The supervisor's names of ``count`` instances of an agent: ``strategy``, ``strategy#2``, ..."""
    return [entry.cli_name if i == 1 else f"{entry.cli_name}{_SEPARATOR}{i}" for i in range(1, count + 1)]


def agent_of(process_name: str) -> str:
    """The agent's CLI name of a process name: ``strategy#2`` → ``strategy``."""
    return process_name.split(_SEPARATOR, 1)[0]


def instance_env(process_name: str, count: int) -> dict[str, str]:
    """AGENT_INSTANCE / AGENT_INSTANCES of a process: instances started together split the
    partitions between them (each is first on its own share) and stand by for the rest."""
    _, sep, number = process_name.partition(_SEPARATOR)
    return {"AGENT_INSTANCE": number if sep else "1", "AGENT_INSTANCES": str(count)}

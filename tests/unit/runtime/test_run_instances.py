"""`tradebus run --instances ROLE=N`: parsing, process names, and the agent of a process."""

from __future__ import annotations

import pytest

from agents.run.display import agent_key
from agents.run.instances import agent_of, parse_instances, process_names
from agents.runtime.registry import resolve


def test_instances_are_parsed_from_repeated_and_comma_separated_options() -> None:
    assert parse_instances(["strategy=2", "risk_manager=3,execution=2"]) == {
        "strategy": 2, "risk-manager": 3, "execution": 2,
    }
    assert parse_instances([]) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("strategy", "ROLE=N"),
        ("strategy=two", "whole number"),
        ("strategy=0", "1..8"),
        ("nobody=2", "unknown agent"),
        ("data-collection=2", "runs once"),
    ],
)
def test_bad_instances_are_refused_with_the_reason(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_instances([value])


def test_instances_are_named_after_their_agent_and_map_back_to_it() -> None:
    names = process_names(resolve("risk-manager"), 3)
    assert names == ["risk-manager", "risk-manager#2", "risk-manager#3"]
    assert {agent_of(n) for n in names} == {"risk-manager"}
    assert {agent_key(n) for n in names} == {"risk_manager"}


def test_two_instances_beating_alternately_are_quiet_when_neither_consumes_more() -> None:
    """The run ends when nothing moves: an active instance's count next to its standby's 0 is
    not movement, and the agent is shown by the instance that consumed."""
    from agents.run.progress import Progress
    from tests.unit.runtime.test_supervisor_run import beat

    progress = Progress()
    for second in range(10):
        consumed = 40 + min(second, 4)  # the active instance consumes until second 4
        progress.record(beat("strategy", consumed, at_seconds=second, instance="active"), now=float(second))
        progress.record(beat("strategy", 0, at_seconds=second, instance="standby"), now=float(second) + 0.5)
    progress.last_event_monotonic = 0.0
    assert progress.quiet_for(now=10.0) == 6.0
    assert progress.agents["strategy"].heartbeat.instance_id == "active"
    assert progress.agents["strategy"].received_monotonic == 9.5  # heard from: any instance's beat
    progress.record(beat("strategy", 45, at_seconds=11, instance="active"), now=11.0)
    assert progress.quiet_for(now=12.0) == 1.0


def test_each_instance_learns_which_share_of_the_partitions_is_its_own() -> None:
    from agents.run.instances import instance_env
    from infra.settings import Settings

    assert [instance_env(n, 3) for n in process_names(resolve("strategy"), 3)] == [
        {"AGENT_INSTANCE": str(i), "AGENT_INSTANCES": "3"} for i in (1, 2, 3)
    ]
    assert Settings(_env_file=None, **instance_env("strategy#2", 2)).agent_instance == 2  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="AGENT_INSTANCE"):
        Settings(_env_file=None, AGENT_INSTANCE="3", AGENT_INSTANCES="2")  # type: ignore[arg-type]

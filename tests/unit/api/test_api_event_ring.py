"""The stream's ring of recent events: increasing ids, replay after an id, a gap (never a silent
hole) when the events after an id were evicted or came from an earlier process."""

from __future__ import annotations

import asyncio
import json
import time

from agents.api.stream import EventRing, sse_events


def ring_of(count: int, capacity: int = 3, first_id: int = 100) -> EventRing:
    ring = EventRing(capacity, first_id=first_id)
    for index in range(count):
        ring.append("candle", {"index": index})
    return ring


def test_ids_increase_by_one_and_replay_starts_after_the_given_id() -> None:
    ring = ring_of(3)
    events, gap = ring.after(100)
    assert gap is None and [e.id for e in events] == [101, 102]
    assert [json.loads(e.data)["index"] for e in events] == [1, 2]
    assert ring.after(102) == ([], None)


def test_evicted_events_are_announced_as_a_gap_with_the_first_id_still_held() -> None:
    ring = ring_of(5)  # holds 102..104; 100 and 101 were evicted
    events, gap = ring.after(100)
    assert [e.id for e in events] == [102, 103, 104]
    assert gap is not None and json.loads(gap.data) == {
        "type": "gap", "last_event_id": 100, "first_available": 102, "restarted": False}
    assert ring.after(101)[1] is None  # 102 is the next one: nothing missed


def test_an_id_of_an_earlier_or_unknown_process_is_a_restart_gap() -> None:
    ring = ring_of(2, first_id=5000)
    _, before = ring.after(10)  # an id from a process that started earlier
    events, ahead = ring.after(9_999_999)  # an id this process never handed out
    assert before is not None and json.loads(before.data)["restarted"] is True
    assert ahead is not None and json.loads(ahead.data)["restarted"] is True
    assert [e.id for e in events] == [5000, 5001]


def test_ids_of_a_new_process_start_above_those_of_an_earlier_one() -> None:
    earlier = EventRing(10)
    earlier.append("candle", {})
    time.sleep(0.002)  # a restart takes far longer than the millisecond the ids are counted in
    assert EventRing(10).last_id >= earlier.last_id


async def test_the_sse_frames_replay_then_follow_live_events_and_filter_types() -> None:
    ring = ring_of(2, capacity=10)
    frames = sse_events(ring, 100, {"candle"}, keepalive=5)
    assert await anext(frames) == "retry: 2000\n\n"
    assert (await anext(frames)).startswith("id: 101\nevent: candle\n")
    waiting = asyncio.ensure_future(anext(frames))
    ring.append("order", {})  # filtered out
    ring.append("candle", {"index": 9})
    frame = await asyncio.wait_for(waiting, 5)
    assert frame.startswith("id: 103\nevent: candle\n") and '"index":9' in frame

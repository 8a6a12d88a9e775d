"""A suspect handled alone lets other handlers run while it waits on their messages."""

from __future__ import annotations

import asyncio

from infra.bus.isolation import IsolationGate, waiting_on_other_messages


async def test_a_suspect_waiting_on_other_messages_lets_them_and_another_suspect_run() -> None:
    gate = IsolationGate(timeout=30)  # a bound far beyond the test: only waiting_on_other_messages helps
    report_handled = asyncio.Event()
    order: list[str] = []

    async def suspect(name: str) -> None:
        async with gate.enter(exclusive=True):
            order.append(f"{name} runs")
            async with waiting_on_other_messages():
                await report_handled.wait()
            order.append(f"{name} done")

    async def report() -> None:
        async with gate.enter(exclusive=False):
            order.append("report")
            report_handled.set()

    first = asyncio.create_task(suspect("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(suspect("second"))
    await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(first, second, report()), 5)
    assert order.index("report") < order.index("first done")
    assert {"first runs", "second runs", "second done"} <= set(order)


async def test_without_a_handling_it_changes_nothing() -> None:
    async with waiting_on_other_messages():
        pass

"""Isolated bus topologies for tests and small helpers to look into queues."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika

from infra.bus import QueueSpec, Topology, declare_topology, delete_topology
from protocol import Candle, topics


def isolated_topology(exchange: str | None = None, max_length_heartbeats: int = 100) -> Topology:
    """A topology under a unique exchange name: a candle work queue and a heartbeat queue.
    Pass the exchange name to rebuild the same topology in another process."""
    exchange = exchange or f"tbtest_{uuid.uuid4().hex[:10]}"
    return Topology(
        exchange,
        (
            QueueSpec(f"{exchange}.work", (topics.ALL_CANDLES,), "test"),
            QueueSpec(f"{exchange}.heartbeats", (topics.ALL_HEARTBEATS,), "test", max_length=max_length_heartbeats),
        ),
    )


async def declare(url: str, topology: Topology, quorum: bool = True) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await declare_topology(await connection.channel(), topology, quorum=quorum)


async def cleanup(url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await delete_topology(await connection.channel(), topology)


async def queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def drain(url: str, queue: str, expect: int, timeout: float = 10.0) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) `expect` messages from a queue, waiting up to `timeout` seconds.

    By consuming, not basic.get: the agents' queues have a single active consumer, and quorum
    queues refuse basic.get on those."""
    taken: list[Any] = []
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=max(expect, 1))
        declared = await channel.declare_queue(queue, passive=True)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if len(taken) >= expect:  # beyond what was asked: back to the queue
                await message.nack(requeue=True)
                return
            await message.ack()
            taken.append(message)
            if len(taken) >= expect:
                done.set()

        tag = await declared.consume(take)
        if expect > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        await declared.cancel(tag)
    return taken


async def drain_signals(url: str, queue: str, signals: int, timeout: float = 10.0,
                        quiet: float = 0.5) -> tuple[list[Any], list[Any]]:
    """Take the strategy agent's output from a signals queue: ``signals`` Signals and the
    SignalsDone markers among and after them (the markers still arriving until the queue has
    been ``quiet`` that long), as (signals, markers). Checks the marker's promise (decision
    0028): each candle's signals come before its marker, which counts them."""
    from protocol import Signal, SignalsDone
    from protocol.codec import decode_any

    loop = asyncio.get_running_loop()
    taken: list[Any] = []
    last = [loop.time()]
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        declared = await channel.declare_queue(queue, passive=True)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            taken.append(decode_any(message.body))
            last[0] = loop.time()

        tag = await declared.consume(take)
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            enough = sum(isinstance(m, Signal) for m in taken) >= signals
            if enough and loop.time() - last[0] >= quiet:
                break
            await asyncio.sleep(0.05)
        await declared.cancel(tag)
    pending: dict[tuple[str, datetime], int] = {}
    for message in taken:
        key = (message.symbol, message.candle_time)
        if isinstance(message, Signal):
            pending[key] = pending.get(key, 0) + 1
        else:
            assert isinstance(message, SignalsDone), type(message)
            assert pending.pop(key, 0) == message.signals, f"marker {key} counts {message.signals} signals"
    assert not pending, f"signals without their candle's marker after them: {sorted(pending)}"
    return [m for m in taken if isinstance(m, Signal)], [m for m in taken if isinstance(m, SignalsDone)]


async def take_one(queue: aio_pika.abc.AbstractQueue, timeout: float = 5.0) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of ``queue``, delivered and left unacked for the caller to settle.

    By consuming (basic.get is refused on quorum queues with a single active consumer)."""
    arrived: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await queue.channel.set_qos(prefetch_count=1)
    tag = await queue.consume(arrived.put)
    try:
        return await asyncio.wait_for(arrived.get(), timeout)
    finally:
        await queue.cancel(tag)


def make_candle(index: int = 0, *, symbol: str = "BTC/USDT", source: str = "test") -> Candle:
    """A valid 15-minute candle, distinct per index."""
    open_time = datetime(2021, 9, 1, tzinfo=UTC) + timedelta(minutes=15 * index)
    base = Decimal("47000") + index
    return Candle(
        source=source,
        exchange="binance",
        symbol=symbol,
        timeframe="15m",
        open_time=open_time,
        close_time=open_time + timedelta(minutes=15),
        open=base,
        high=base + Decimal("12.5"),
        low=base - Decimal("7.25"),
        close=base + Decimal("3.1"),
        volume=Decimal("1.5"),
    )


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    """Poll a predicate (plain or async) until it is true or the timeout passes."""

    async def check() -> bool:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()

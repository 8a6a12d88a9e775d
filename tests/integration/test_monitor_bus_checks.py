"""The reality check's queue probe on the real broker."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from agents.monitor.bus_checks import declared

pytestmark = pytest.mark.integration


async def test_declared_reads_the_current_depth_on_a_robust_channel_every_time(rabbitmq_url: str) -> None:
    # aio-pika's robust channel caches a passively declared queue by name; a probe that reused
    # its first answer would report an empty queue forever (the pipeline benchmark hung on it).
    connection = await aio_pika.connect_robust(rabbitmq_url)
    name = f"tbtest.probe.{uuid.uuid4().hex[:8]}"
    async with connection:
        channel = await connection.channel()
        assert await declared(channel, f"{name}.missing") is None
        channel = await connection.channel()  # a refused passive declare closed the last one
        await channel.declare_queue(name, durable=True, auto_delete=False)
        try:
            assert await declared(channel, name) == (0, 0)
            publisher = await connection.channel(publisher_confirms=True)  # confirmed: in the queue
            for body in (b"x", b"y"):
                await publisher.default_exchange.publish(aio_pika.Message(body), routing_key=name)
            assert await declared(channel, name) == (2, 0)
            queue = await channel.get_queue(name)
            async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                pass  # keep it unacked: the consumer count is what is read

            tag = await queue.consume(hold, no_ack=False)
            depth = await declared(channel, name)
            assert depth is not None and depth[1] == 1
            await queue.cancel(tag)
        finally:
            await channel.queue_delete(name)

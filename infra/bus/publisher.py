"""Confirmed, mandatory, persistent publishing bounded by a timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from infra.bus.errors import PublishFailed, PublishRejected, PublishTimeout, UnroutableMessage
from infra.metrics.catalogue import PUBLISH_CONFIRM_SECONDS
from infra.metrics.observe import Timer
from protocol import Message, encode


def to_amqp(message: Message, headers: dict[str, Any] | None = None) -> aio_pika.Message:
    """The AMQP message for a protocol message: persistent, JSON, ids in the properties."""
    return aio_pika.Message(
        body=encode(message),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(message.message_id),
        correlation_id=str(message.correlation_id),
        type=message.schema_,
        app_id=message.source,
        timestamp=message.produced_at,
        headers=headers or {},
    )


def copy_of(incoming: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a delivered message (body and properties) with other headers: how a
    message is retried, dead-lettered or moved back without changing what it says."""
    return aio_pika.Message(
        body=incoming.body,
        headers=headers,
        content_type=incoming.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=incoming.message_id,
        correlation_id=incoming.correlation_id,
        type=incoming.type,
        app_id=incoming.app_id,
        timestamp=incoming.timestamp,
    )


class Publisher:
    """Publishes on one channel opened with publisher confirms and `on_return_raises`."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange, timeout: float) -> None:
        self._channel = channel  # strong reference: a collected channel would be closed under us
        self._exchange = exchange
        self._timeout = timeout

    @property
    def exchange_name(self) -> str:
        return self._exchange.name

    async def publish(self, message: aio_pika.Message, routing_key: str, exchange: str | None = None) -> None:
        """Return only once the broker confirmed the message; raise a PublishFailed otherwise."""
        target = self._exchange if exchange is None else await self._exchange_named(exchange)
        timer, outcome = Timer(), "failed"
        try:
            # The robust channel blocks while reconnecting; wait_for bounds that as well.
            await asyncio.wait_for(
                target.publish(message, routing_key=routing_key, mandatory=True, timeout=self._timeout),
                timeout=self._timeout,
            )
            outcome = "confirmed"
        except aiormq.exceptions.PublishError as exc:
            outcome = "unroutable"
            raise UnroutableMessage(target.name, routing_key) from exc
        except aiormq.exceptions.DeliveryError as exc:
            outcome = "rejected"
            raise PublishRejected(f"broker refused message for {routing_key!r}: {exc}") from exc
        except asyncio.TimeoutError as exc:
            outcome = "timeout"
            raise PublishTimeout(f"no confirmation within {self._timeout}s for {routing_key!r}") from exc
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishFailed(f"publish to {routing_key!r} failed: {exc!r}") from exc
        finally:
            PUBLISH_CONFIRM_SECONDS.labels(outcome=outcome).observe(timer.seconds)

    async def _exchange_named(self, name: str) -> AbstractExchange:
        if name == "":
            return self._channel.default_exchange
        return await self._channel.get_exchange(name, ensure=False)

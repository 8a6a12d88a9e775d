"""Errors the bus raises. A publish either is confirmed by the broker or raises one of these."""


class BusError(Exception):
    """Base class of every bus failure."""


class PublishFailed(BusError):
    """The broker did not confirm the message: it may or may not have been stored (retry is safe,
    consumers are idempotent)."""


class PublishTimeout(PublishFailed):
    """No confirmation within the publish timeout (e.g. the broker is down or reconnecting)."""


class PublishRejected(PublishFailed):
    """The broker answered basic.nack: it did not take the message."""


class UnroutableMessage(PublishFailed):
    """No queue is bound for the routing key: with mandatory publishing this is an error, never a
    silent drop."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(f"no queue bound on exchange {exchange!r} for routing key {routing_key!r}")
        self.exchange = exchange
        self.routing_key = routing_key

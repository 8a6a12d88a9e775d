"""The RabbitMQ bus (aio-pika): durable topology, confirmed publishing, safe consumption."""

from infra.bus.bus import Bus, connect_plain, queue_counts
from infra.bus.consumer import Delivery, Handler, QueueConsumer
from infra.bus.errors import BusError, PublishFailed, PublishRejected, PublishTimeout, UnroutableMessage
from infra.bus.isolation import waiting_on_other_messages
from infra.bus.publisher import Publisher, to_amqp
from infra.bus.retry import RetryPolicy, retry_delay
from infra.bus.stats import BusStats
from infra.bus.topology import (
    QueueSpec,
    Topology,
    declare_topology,
    delete_topology,
    dead_letter_exchange_name,
    dead_letter_queue_name,
    system_topology,
)

__all__ = [
    "Bus",
    "BusError",
    "BusStats",
    "Delivery",
    "Handler",
    "PublishFailed",
    "PublishRejected",
    "PublishTimeout",
    "Publisher",
    "QueueConsumer",
    "QueueSpec",
    "RetryPolicy",
    "Topology",
    "UnroutableMessage",
    "dead_letter_exchange_name",
    "dead_letter_queue_name",
    "declare_topology",
    "delete_topology",
    "connect_plain",
    "queue_counts",
    "retry_delay",
    "system_topology",
    "to_amqp",
    "waiting_on_other_messages",
]

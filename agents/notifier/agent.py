"""The alert notifier: a small consumer on the bus that tells operators what needs them.

It listens on ONE private queue of its own (server-named, exclusive, auto-delete, at most
``NOTIFIER_BUS_QUEUE_LENGTH`` messages with drop-head), bound to the bus exchange for execution
reports, emergency stops, heartbeats and risk metrics, and to the dead-letter exchange with the
name of every queue of the topology: the dead-letter exchange is a direct exchange keyed by the
queue name, so each dead letter reaches its ``.dlq`` AND this queue, and the DLQ that
``tradebus dead-letters requeue`` works on is never consumed. A message is acked as soon as its
alert is queued for the targets (never after a send): nothing the notifier does can hold back
the broker or an agent, and a notifier that is down only loses its own private copies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from agents.notifier.alerts import Alert, AgentWatch, RiskWatch, dead_letter_alert, report_alert, stop_alert
from agents.notifier.policy import Deduplicator, RetryPlan
from agents.notifier.sender import TargetWorker
from agents.notifier.settings import NotifierSettings
from agents.notifier.targets import Target, TelegramTarget, WebhookTarget
from agents.runtime.base import Agent
from infra.bus.dead_letters import describe_dead_letter
from protocol import EmergencyStop, ExecutionReport, Heartbeat, MessageDecodeError, RiskMetrics, decode_any, topics

__all__ = ["NotifierAgent", "build_targets"]

NAME = "notifier"
# Alerts for the bus topics it listens to; dead letters come through the dead-letter exchange.
BINDINGS = (topics.ALL_EXECUTION_REPORTS, topics.ALL_EMERGENCY_STOP, topics.ALL_HEARTBEATS, topics.risk_metrics())


def build_targets(settings: NotifierSettings) -> list[Target]:
    """Every configured target: each webhook URL, and Telegram when token and chat id are set."""
    targets: list[Target] = [WebhookTarget(url, index) for index, url in enumerate(settings.webhook_urls(), 1)]
    if settings.telegram_bot_token is not None and settings.telegram_chat_id:
        targets.append(TelegramTarget(settings.telegram_api_url, settings.telegram_bot_token.get_secret_value(),
                                      settings.telegram_chat_id))
    return targets


class NotifierAgent(Agent):
    """Watches the bus and sends alerts to webhooks and Telegram (see the module docstring)."""

    name: ClassVar[str] = NAME
    settings_class: ClassVar[type[NotifierSettings]] = NotifierSettings  # type: ignore[assignment]
    settings: NotifierSettings

    def __init__(self, settings: NotifierSettings, *args: object, **kwargs: object) -> None:
        super().__init__(settings, *args, **kwargs)  # type: ignore[arg-type]
        self.dedup = Deduplicator(settings.notifier_dedup_window)
        self.agents = AgentWatch(settings.notifier_down_after, settings.heartbeat_interval, frozenset({NAME}))
        self.risk = RiskWatch(settings.risk_max_drawdown)
        self.workers: list[TargetWorker] = []
        self.counts = {"alerts": 0, "duplicates": 0, "undecodable": 0}
        self._client: httpx.AsyncClient | None = None
        self._channel: AbstractChannel | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def setup(self) -> None:
        # httpx logs every request URL at INFO, and the Telegram URL holds the bot token.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        s = self.settings
        self._client = httpx.AsyncClient(timeout=s.notifier_timeout, follow_redirects=False)
        retry = RetryPlan(s.notifier_retry_attempts, s.notifier_retry_backoff, s.notifier_retry_backoff_cap)
        self.workers = [
            TargetWorker(target, self._client, deployment=s.bus_exchange, queue_size=s.notifier_queue_size,
                         per_minute=s.notifier_rate_per_minute, retry=retry, sleep=self.sleep_unless_stopped)
            for target in build_targets(s)
        ]
        if not self.workers:
            self.log.warning("no alert targets configured (NOTIFIER_WEBHOOK_URLS, TELEGRAM_BOT_TOKEN + "
                             "TELEGRAM_CHAT_ID): alerts are only logged")
        for worker in self.workers:
            self._tasks.append(asyncio.create_task(worker.run(), name=f"notify-{worker.target.name}"))
        await self._listen()
        self._tasks.append(asyncio.create_task(self._watch_silence(), name="notify-silence"))
        self.log.info("notifier ready", targets=[w.target.name for w in self.workers])

    async def _listen(self) -> None:
        topology = self.bus.topology
        channel = await self.bus.connection.channel()
        self._channel = channel  # a strong reference: aio-pika closes collected channels
        await channel.set_qos(prefetch_count=256)
        queue = await channel.declare_queue(
            "", exclusive=True, auto_delete=True, durable=False,
            arguments={"x-max-length": self.settings.notifier_bus_queue_length, "x-overflow": "drop-head"},
        )
        for pattern in BINDINGS:
            await queue.bind(topology.exchange, routing_key=pattern)
        for spec in topology.queues:
            await queue.bind(topology.dead_letter_exchange, routing_key=spec.name)
        await queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        try:
            for alert in self.alerts_for(incoming):
                self.dispatch(alert)
        except Exception as exc:  # one odd message must not stop the alerts behind it
            self.log.error("message not turned into an alert", error=repr(exc), routing_key=incoming.routing_key)
        finally:
            try:
                await incoming.ack()
            except Exception as exc:  # the channel closed under it: the private queue went with it
                self.log.warning("delivery not acked", error=repr(exc))

    def alerts_for(self, incoming: AbstractIncomingMessage) -> list[Alert]:
        """The alerts one delivery causes (most cause none)."""
        if incoming.exchange == self.bus.topology.dead_letter_exchange:
            dead = describe_dead_letter(incoming)
            queue = str(incoming.routing_key or "?")
            return [dead_letter_alert(queue, dead.message_id, dead.schema, dead.kind, dead.error, dead.routing_key)]
        try:
            message = decode_any(incoming.body)
        except MessageDecodeError:
            # The consumer that owns the topic dead-letters it; that copy is the alert.
            self.counts["undecodable"] += 1
            return []
        if isinstance(message, ExecutionReport):
            alert = report_alert(message)
            return [alert] if alert is not None else []
        if isinstance(message, EmergencyStop):
            return [stop_alert(message)]
        if isinstance(message, Heartbeat):
            return self.agents.on_heartbeat(message, time.monotonic())
        if isinstance(message, RiskMetrics):
            return self.risk.on_metrics(message)
        return []

    def dispatch(self, alert: Alert) -> None:
        """Queue an alert for every target, unless its key was sent within the dedup window."""
        if not self.dedup.first(alert.key, time.monotonic()):
            self.counts["duplicates"] += 1
            return
        self.counts["alerts"] += 1
        self.log.info("alert", kind=alert.kind.value, severity=alert.severity.value, key=alert.key,
                      title=alert.title, correlation_id=alert.correlation_id)
        for worker in self.workers:
            worker.put(alert)

    async def _watch_silence(self) -> None:
        while not await self.sleep_unless_stopped(self.settings.heartbeat_interval):
            for alert in self.agents.missing(time.monotonic()):
                self.dispatch(alert)

    def heartbeat_detail(self) -> dict[str, str]:
        detail = {key: str(value) for key, value in self.counts.items()}
        detail["targets"] = str(len(self.workers))
        for worker in self.workers:
            short = worker.target.name.split(" ", 1)[0]
            stats = worker.stats
            detail[f"{short}.sent"] = str(stats.sent)
            detail[f"{short}.failed"] = str(stats.failed)
            detail[f"{short}.dropped"] = str(stats.dropped)
            detail[f"{short}.queued"] = str(worker.queued)
        return detail

    def health_problems(self) -> list[str]:
        return [
            f"alert target {w.target.name} failing: {w.stats.last_error}" for w in self.workers if w.failing
        ]

    async def teardown(self) -> None:
        pending = sum(worker.queued for worker in self.workers)
        if pending:
            self.log.warning("stopping with alerts not sent", pending=pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        if self._client is not None:
            await self._client.aclose()

"""`tradebus dead-letters`: see what was dead-lettered and why, and move it back after the fix.

    tradebus dead-letters list [--queue Q] [--show N]
    tradebus dead-letters requeue Q [--limit N] [--yes]

Q is a work queue of the topology of ``BUS_EXCHANGE`` (``--exchange`` for a run's own exchange),
named in full (``tradebus.risk_manager.signals``) or without the exchange prefix
(``risk_manager.signals``). The work is in infra.bus.dead_letters.
"""

from __future__ import annotations

import asyncio

import typer

from infra.bus import Topology, system_topology
from infra.bus.dead_letters import DeadLetterError, inspect_dead_letters, requeue_dead_letters
from infra.settings import Settings, redact_url

app = typer.Typer(help="List dead-lettered messages and move them back to their queue.", no_args_is_help=True)

_EXCHANGE = typer.Option(None, "--exchange", help="bus exchange (default: BUS_EXCHANGE)")
_TIMEOUT = typer.Option(10.0, "--timeout", min=0.1, help="seconds any one broker operation may take")


def resolve_queue(topology: Topology, name: str) -> str:
    """The topology's queue for a full name, a name without the exchange prefix, or a DLQ name."""
    name = name.strip().removesuffix(".dlq")
    for candidate in (name, f"{topology.exchange}.{name}"):
        if any(spec.name == candidate for spec in topology.queues):
            return candidate
    known = ", ".join(spec.name.removeprefix(f"{topology.exchange}.") for spec in topology.queues)
    raise typer.BadParameter(f"{name!r} is not a queue of exchange {topology.exchange!r} (known: {known})")


def _fail(exc: DeadLetterError, url: str, topology: Topology) -> typer.Exit:
    hint = f"; has an agent declared the queues of exchange {topology.exchange!r}?" if "does not exist" in str(exc) else ""
    typer.echo(f"dead-letters: {exc} ({redact_url(url)}){hint}", err=True)
    return typer.Exit(1)


def _context(exchange: str | None) -> tuple[str, Topology]:
    settings = Settings()
    return settings.rabbitmq_url.get_secret_value(), system_topology(exchange or settings.bus_exchange, settings.bus_partitions)


@app.command("list")
def list_command(
    queue: str = typer.Option(None, "--queue", "-q", help="only this queue's dead letters"),
    show: int = typer.Option(5, "--show", min=0, max=100, help="messages described per queue"),
    exchange: str = _EXCHANGE,
    timeout: float = _TIMEOUT,
) -> None:
    """Count the dead letters of every queue (or one) and describe the first few; consumes nothing."""
    url, topology = _context(exchange)
    names = [resolve_queue(topology, queue)] if queue else [spec.name for spec in topology.queues]
    try:
        found = asyncio.run(inspect_dead_letters(url, names, show=show, timeout=timeout))
    except DeadLetterError as exc:
        raise _fail(exc, url, topology) from None
    for entry in found:
        if entry.count == 0 and not queue:
            continue
        typer.echo(f"{entry.queue}.dlq: {entry.count} message(s)")
        for letter in entry.sample:
            typer.echo(
                f"  {letter.message_id} {letter.schema} [{letter.kind}] attempts={letter.attempts} "
                f"at={letter.dead_lettered_at} key={letter.routing_key}\n    {letter.error}"
            )
    total = sum(entry.count for entry in found)
    typer.echo(f"{total} dead letter(s) in {len(found)} queue(s) of exchange {topology.exchange!r}")


@app.command("requeue")
def requeue_command(
    queue: str = typer.Argument(..., help="the work queue whose dead letters go back to it"),
    limit: int = typer.Option(None, "--limit", min=1, help="move at most this many (default: all there now)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    exchange: str = _EXCHANGE,
    timeout: float = _TIMEOUT,
) -> None:
    """Move dead letters back to their queue with their attempts reset (after fixing the cause)."""
    url, topology = _context(exchange)
    name = resolve_queue(topology, queue)
    if not yes:
        amount = f"up to {limit}" if limit else "all"
        typer.confirm(f"Move {amount} dead letters of {name} back to {name}?", abort=True)
    try:
        moved = asyncio.run(requeue_dead_letters(url, name, limit=limit, timeout=timeout))
    except DeadLetterError as exc:
        raise _fail(exc, url, topology) from None
    typer.echo(
        f"moved {moved} message(s) from {name}.dlq back to {name}, each confirmed before its dead letter was acked"
    )

"""Who may publish what on the bus: one broker user per process role, and its permissions.

The model (decision 0011): every process connects with its own RabbitMQ user. Ordinary
permissions (configure / write / read, regular expressions over exchange and queue names) let
each role declare the topology, consume and dead-letter; RabbitMQ *topic* permissions on the
bus's topic exchange then say which routing keys the role may publish. Only the risk manager
may publish ``trade.order.*``, only execution ``execution.report.*``; the operator, API and MCP
roles only ``control.*`` and signals of their own strategy ids.

Every routing key here comes from :mod:`protocol.topics` (never typed twice);
:func:`provisioning_script` renders ``infra/rabbitmq/provision-users.sh`` from this module and a
unit test checks the committed file against it.

What this does NOT grant, on purpose:

- write on ``amq.default``: a publish through the default exchange goes straight into any named
  queue, past the topic permissions. No consumer re-publishes through it today (sequential
  consumers retry in place); a role that needs it must say so (``default_exchange``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from protocol import topics

__all__ = [
    "AGENT_ROLES",
    "ROLES",
    "Role",
    "heartbeat_key",
    "password_variable",
    "provisioning_script",
    "publish_regex",
    "resource_regex",
    "topic_regex",
]


@dataclass(frozen=True, slots=True)
class Role:
    """One process role: the routing keys it may publish (AMQP topic patterns, or anchored regexes
    for own-strategy signals) and whether it needs the default exchange (retries by re-publish)."""

    name: str
    publishes: tuple[str, ...]
    summary: str
    own_signal_prefix: str | None = None
    default_exchange: bool = False
    # Server-named exclusive queues (amq.gen-*): the reality check and the API listen on those.
    private_queues: bool = False

    @property
    def env_suffix(self) -> str:
        return self.name.upper()


def heartbeat_key(role: str) -> str:
    """The heartbeat routing key of a process (its role name is its agent name)."""
    return topics.heartbeat(role)


def _agent(name: str, summary: str, *keys: str) -> Role:
    return Role(name, (*keys, heartbeat_key(name)), summary)


AGENT_ROLES: Final[tuple[Role, ...]] = (
    _agent("data_collection", "candles and data gaps", topics.ALL_CANDLES, topics.ALL_GAPS),
    _agent("technical_analysis", "indicator snapshots", topics.ALL_INDICATORS),
    _agent("strategy", "strategy signals", topics.ALL_SIGNALS),
    _agent(
        "risk_manager",
        "orders, rejections, positions, risk metrics, and cancels of expired reservations",
        topics.ALL_ORDERS, topics.ALL_REJECTIONS, topics.ALL_POSITIONS, topics.risk_metrics(),
        topics.cancel_order(),
    ),
    _agent("execution", "execution reports", topics.ALL_EXECUTION_REPORTS),
)

ROLES: Final[dict[str, Role]] = {
    role.name: role
    for role in (
        *AGENT_ROLES,
        Role("monitor", (), "nothing: reality check and run panel only read", private_queues=True),
        Role("operator", (topics.ALL_CONTROL,), "control commands (emergency stop, cancel, pause/resume, close)"),
        Role("api", (topics.ALL_CONTROL, heartbeat_key("api")), "control commands and api-* signals",
             own_signal_prefix="api-", private_queues=True),
        # Least privilege: the MCP server's only control is asking for the stop (decision 0020);
        # cancels, pauses, closes and releasing the stop stay with a person.
        Role("mcp", (topics.emergency_stop(), heartbeat_key("mcp")), "emergency-stop requests and mcp-* signals",
             own_signal_prefix="mcp-", private_queues=True),
        Role("notifier", (heartbeat_key("notifier"),), "its heartbeat only: alerts leave over HTTP",
             private_queues=True),
    )
}


def topic_regex(pattern: str) -> str:
    """An AMQP topic pattern as an anchored regular expression over routing keys.

    ``*`` is exactly one word, ``#`` zero or more words (so ``trade.order.#`` also matches
    ``trade.order``); every other word is literal.
    """
    parts: list[str] = []
    words = pattern.split(".")
    for index, word in enumerate(words):
        sep = r"\." if index else ""
        if word == "#":
            # Zero or more words: the separator belongs to the optional part.
            parts.append(r"(\.[^.]+)*" if index else r"([^.]+(\.[^.]+)*)?")
        elif word == "*":
            parts.append(sep + r"[^.]+")
        else:
            parts.append(sep + re.escape(word))
    return "^" + "".join(parts) + "$"


def _own_signals(prefix: str) -> str:
    # strategy.signal.{strategy_id}.{symbol}[.p{k}] with a strategy id that starts with the prefix
    # (the partition word is there when the bus is partitioned, decision 0025).
    head = topics.ALL_SIGNALS.removesuffix("#")
    partition = r"(\." + topics.PARTITION_WORD_REGEX + ")?"
    return "^" + re.escape(head) + re.escape(prefix) + r"[^.]*\.[^.]+" + partition + "$"


def publish_regex(role: Role) -> str:
    """The role's topic write permission: one anchored regex matching exactly its keys ('^$' for none).

    RabbitMQ matches topic permissions unanchored and expands ``{...}`` variables, so every
    alternative is anchored and none contains a brace.
    """
    alternatives = [topic_regex(p) for p in role.publishes]
    if role.own_signal_prefix:
        alternatives.append(_own_signals(role.own_signal_prefix))
    if not alternatives:
        return "^$"
    return alternatives[0] if len(alternatives) == 1 else "|".join(f"({a})" for a in alternatives)


def resource_regex(exchange_pattern: str, private_queues: bool = False) -> str:
    """configure/write/read over the bus exchange, its dead-letter exchange and every queue.

    Every process declares the whole topology (start-up order must not matter), so every role
    configures every queue (declare), writes them (bind; write on the DLX to dead-letter) and reads
    them (consume, bind from the exchange). ``exchange_pattern`` is the regex-escaped exchange name.
    With ``private_queues`` (monitor, api, mcp) also a process's private, unnamed queues:
    server-named ``amq.gen-...`` and the ``amq_<hex>`` names aio-pika's robust channels give them
    (the reality check listens for heartbeats on one); a publish still needs a topic permission,
    and the default exchange stays closed.
    """
    if private_queues:
        return f"^({exchange_pattern}(\\..+)?|{PRIVATE_QUEUES})$"
    return f"^{exchange_pattern}(\\..+)?$"


# Private queues (`declare_queue("")`): named by the server (amq.gen-...) or by aio-pika (amq_<hex>).
PRIVATE_QUEUES: Final = "amq\\.gen-.+|amq_[0-9a-f]+"


def password_variable(role: Role) -> str:
    """The environment variable that holds the role's broker password."""
    return f"RABBITMQ_PASSWORD_{role.env_suffix}"


def provisioning_script() -> str:
    """``infra/rabbitmq/provision-users.sh``: idempotent users and permissions for every role."""
    lines = [_SCRIPT_HEAD]
    for role in ROLES.values():
        resources = "$PRIVATE" if role.private_queues else "$RESOURCES"
        write = "^($EXCHANGE_RE(\\..+)?|amq\\.default)\\$" if role.default_exchange else resources
        lines.append(
            f"provision {role.name} {password_variable(role)} '{publish_regex(role)}' \"{resources}\" \"{write}\""
            f"  # {role.summary}"
        )
    lines.append(_SCRIPT_TAIL)
    return "\n".join(lines)


_SCRIPT_HEAD = r"""#!/bin/sh
# GENERATED by `python -m infra.bus.permissions` from infra/bus/permissions.py: do not edit.
# tests/unit/test_bus_permissions.py fails when this file and the module disagree.
#
# One RabbitMQ user per tradebus process role with its permissions (decision 0011). Idempotent:
# creates a missing user, resets an existing user's password, (re)sets its permissions. Run it
# where `rabbitmqctl` reaches the node (inside the rabbitmq container). Never prints a password.
#
#   RABBITMQ_PASSWORD_<ROLE>   password of role <ROLE> (e.g. RABBITMQ_PASSWORD_EXECUTION); a role
#                              whose variable is unset or empty is skipped, unless it is required
#   TRADEBUS_REQUIRED_ROLES    roles that must be provisioned (default: the five agents)
#   RABBITMQ_VHOST             virtual host (default /), created if missing
#   BUS_EXCHANGE               the bus's topic exchange (default tradebus)
#   TRADEBUS_USER_PREFIX       user names are <prefix><role> (default tradebus-)
#   RABBITMQCTL                the rabbitmqctl command (default rabbitmqctl)
set -eu

VHOST="${RABBITMQ_VHOST:-/}"
EXCHANGE="${BUS_EXCHANGE:-tradebus}"
PREFIX="${TRADEBUS_USER_PREFIX:-tradebus-}"
CTL="${RABBITMQCTL:-rabbitmqctl}"
REQUIRED="${TRADEBUS_REQUIRED_ROLES:-data_collection technical_analysis strategy risk_manager execution}"
# The exchange name as a regex (its dots literal); every resource of the bus starts with it.
EXCHANGE_RE=$(printf '%s' "$EXCHANGE" | sed 's/[].[^$*+?(){}|\\]/\\&/g')
RESOURCES="^$EXCHANGE_RE(\..+)?\$"
# The same plus private unnamed queues (declare_queue("")), for roles that listen on one:
# server-named amq.gen-..., and aio-pika's robust channels' amq_<hex>.
PRIVATE="^($EXCHANGE_RE(\..+)?|amq\.gen-.+|amq_[0-9a-f]+)\$"

case "$EXCHANGE" in *[!A-Za-z0-9._-]*|'') echo "BUS_EXCHANGE must be letters, digits, '.', '_' or '-'" >&2; exit 2;; esac

if ! $CTL -s list_vhosts name | grep -qxF "$VHOST"; then
    $CTL -q add_vhost "$VHOST"
fi
EXISTING_USERS=$($CTL -s list_users | cut -f1)
provisioned=0

# provision ROLE PASSWORD_VARIABLE TOPIC_WRITE_REGEX RESOURCES_REGEX RESOURCE_WRITE_REGEX
provision() {
    role=$1; variable=$2; topic_write=$3; resources=$4; write=$5; user="$PREFIX$role"
    eval "password=\${$variable:-}"
    if [ -z "$password" ]; then
        case " $REQUIRED " in
            *" $role "*) echo "provision-users: $variable is not set (role $role is required)" >&2; exit 2;;
        esac
        echo "provision-users: $role skipped ($variable not set)"
        return 0
    fi
    if printf '%s\n' "$EXISTING_USERS" | grep -qxF "$user"; then
        $CTL -q change_password -- "$user" "$password" >/dev/null
    else
        $CTL -q add_user -- "$user" "$password" >/dev/null
    fi
    $CTL -q set_permissions -p "$VHOST" "$user" "$resources" "$write" "$resources"
    $CTL -q set_topic_permissions -p "$VHOST" "$user" "$EXCHANGE" "$topic_write" '.*'
    echo "provision-users: $user may publish $topic_write on $EXCHANGE in vhost $VHOST"
    provisioned=$((provisioned + 1))
}
"""

_SCRIPT_TAIL = r"""
[ "$provisioned" -gt 0 ] || { echo "provision-users: no role provisioned" >&2; exit 2; }
"""


if __name__ == "__main__":  # python -m infra.bus.permissions > infra/rabbitmq/provision-users.sh
    print(provisioning_script(), end="")

#!/bin/bash
# The official image's environment contract, for Debian's rabbitmq-server: the default user,
# password and vhost are created when the node starts on an empty data directory (a volume
# that already holds a node keeps its users), AMQP listens on RABBITMQ_NODE_PORT.
set -euo pipefail
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users.guest = false
listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
CONF
chmod 640 /etc/rabbitmq/rabbitmq.conf
chown root:rabbitmq /etc/rabbitmq/rabbitmq.conf
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
if [ "$#" -gt 0 ]; then exec "$@"; fi
# The server runs as the rabbitmq user, as process 1's direct replacement (signals reach it).
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server

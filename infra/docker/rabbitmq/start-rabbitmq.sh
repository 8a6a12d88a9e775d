#!/bin/sh
# The rabbitmq service's command (docker-compose.yml): start the broker, create one user per
# tradebus process with its permissions (infra/rabbitmq/provision-users.sh, mounted read-only;
# idempotent, so every start applies the passwords from .env again), then leave a marker that
# the healthcheck requires: no agent starts before its user exists.
# Works in the official rabbitmq image and in the Debian stand-in (infra/standins/rabbitmq).
set -eu
ready=/tmp/tradebus-users-provisioned
if [ "$(id -u)" = 0 ]; then
  # Like the official entrypoint: the node runs as the rabbitmq user and owns its data.
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups sh "$0" "$@"
fi
rm -f "$ready"  # a restarted container keeps its /tmp: provisioning must happen again first
rabbitmq-server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit $?' TERM INT
stop_failed() {
  echo "start-rabbitmq: $1" >&2
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" || true
  exit 1
}
# await_startup fails at once while the Erlang node is not registered yet: ask again, bounded.
deadline=$(($(date +%s) + 180))
until timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || stop_failed "rabbitmq-server exited during start-up"
  [ "$(date +%s)" -lt "$deadline" ] || stop_failed "the node did not finish starting within 180 s"
  sleep 2
done
sh /etc/tradebus/provision-users.sh || stop_failed "provisioning the tradebus users failed (see above)"
touch "$ready"
echo "start-rabbitmq: tradebus users provisioned; broker ready" >&2
wait "$server"

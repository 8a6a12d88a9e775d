#!/bin/bash
# The part of influxdb:2.x's environment contract that InfluxDB 1.x can honour: with
# DOCKER_INFLUXDB_INIT_MODE=setup, the database DOCKER_INFLUXDB_INIT_BUCKET exists before the
# store is reported ready (`influx ping` checks /tmp/standin-ready as well as /ping).
set -euo pipefail
rm -f /tmp/standin-ready
mkdir -p /var/lib/influxdb2
chown -R influxdb:influxdb /var/lib/influxdb2
as_influxdb() { setpriv --reuid=influxdb --regid=influxdb --init-groups "$@"; }
if [ "$#" -gt 0 ]; then exec "$@"; fi

as_influxdb influxd -config /etc/influxdb/influxdb.conf &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
for _ in $(seq 60); do
  curl -fs -o /dev/null http://127.0.0.1:8086/ping && break
  kill -0 "$server" 2>/dev/null || { echo "stand-in: influxd exited during start-up" >&2; exit 1; }
  sleep 1
done
curl -fs -o /dev/null http://127.0.0.1:8086/ping || { echo "stand-in: influxd did not answer /ping within 60 s" >&2; exit 1; }
if [ "${DOCKER_INFLUXDB_INIT_MODE:-}" = setup ]; then
  bucket=${DOCKER_INFLUXDB_INIT_BUCKET:?DOCKER_INFLUXDB_INIT_BUCKET is required with DOCKER_INFLUXDB_INIT_MODE=setup}
  # CREATE DATABASE is idempotent in 1.x: a volume that already holds the database keeps it.
  curl -fsS -o /dev/null --data-urlencode "q=CREATE DATABASE \"$bucket\"" http://127.0.0.1:8086/query
  echo "stand-in: database $bucket ready (InfluxDB 1.x, no token authentication)" >&2
fi
touch /tmp/standin-ready
wait "$server"

# shellcheck shell=bash
# Make sure the local services tradebus needs are running, starting (or, for InfluxDB, installing)
# them where this machine allows, and say exactly what is missing where it does not.
# Sourced by scripts/test and scripts/run. Exports RABBITMQ_URL, DATABASE_URL, INFLUXDB_URL.
# URLs already set (environment, or .env via load_dotenv_urls) are used as they are.

say() { printf '[services] %s\n' "$*" >&2; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then say "timed out waiting for $what"; return 1; fi
    sleep 1
  done
}

is_root_debian() { [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }

ensure_rabbitmq() {
  if [ -n "${RABBITMQ_URL:-}" ]; then say "RabbitMQ: using RABBITMQ_URL from the environment"; return 0; fi
  export RABBITMQ_URL="amqp://guest:guest@127.0.0.1:5672/"
  if rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then say "RabbitMQ: running"; return 0; fi
  if ! command -v rabbitmq-server >/dev/null; then
    say "RabbitMQ is not installed. Install it (Debian: apt-get install rabbitmq-server) or set RABBITMQ_URL."
    return 1
  fi
  say "RabbitMQ: starting (rabbitmq-server -detached)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  # start_app as well: a node left in stop_app state by an interrupted test answers but routes nothing.
  wait_for 90 "the RabbitMQ node" rabbitmqctl -q await_startup || return 1
  rabbitmqctl -q start_app >/dev/null 2>&1 || true
  wait_for 60 "RabbitMQ on port 5672" rabbitmq-diagnostics -q check_port_connectivity
}

ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then say "Postgres: using DATABASE_URL from the environment"; return 0; fi
  # scripts/test connects to the admin database `postgres`; scripts/run sets SERVICES_DATABASE=tradebus.
  export DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/${SERVICES_DATABASE:-postgres}"
  if pg_isready -q -h 127.0.0.1 -p 5432; then say "Postgres: running"; return 0; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    say "PostgreSQL is not installed. Install it (Debian: apt-get install postgresql) or set DATABASE_URL."
    return 1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "Postgres: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for 60 "Postgres on 127.0.0.1:5432" pg_isready -h 127.0.0.1 -p 5432
}

influx_ping() { curl -fs -o /dev/null "http://127.0.0.1:8086/ping"; }

ensure_influxdb() {
  if [ -n "${INFLUXDB_URL:-}" ]; then say "InfluxDB: using INFLUXDB_URL from the environment"; return 0; fi
  export INFLUXDB_URL="http://127.0.0.1:8086"
  if influx_ping; then say "InfluxDB: running"; return 0; fi
  if ! command -v influxd >/dev/null; then
    if is_root_debian; then
      say "InfluxDB: installing Debian's influxdb package"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q influxdb >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q influxdb >/dev/null
      } || { say "apt-get install influxdb failed"; return 1; }
    else
      say "InfluxDB is not installed. As root on Debian: apt-get install influxdb; or run InfluxDB 2.x/3 and set INFLUXDB_URL (and INFLUXDB_TOKEN)."
      return 1
    fi
  fi
  say "InfluxDB: starting influxd"
  local config=/etc/influxdb/influxdb.conf logdir=/var/log/influxdb
  mkdir -p "$logdir" /var/lib/influxdb
  if [ -f "$config" ]; then
    nohup influxd -config "$config" >>"$logdir/influxd.log" 2>&1 &
  else
    nohup influxd >>"$logdir/influxd.log" 2>&1 &
  fi
  wait_for 60 "InfluxDB on 127.0.0.1:8086" influx_ping
}

ensure_services() {
  local failed=0
  ensure_rabbitmq || failed=1
  ensure_postgres || failed=1
  ensure_influxdb || failed=1
  return $failed
}

load_dotenv_urls() { # load_dotenv_urls FILE: take the service URLs from a .env file unless already set
  local file=$1 var value
  [ -f "$file" ] || return 0
  for var in RABBITMQ_URL DATABASE_URL INFLUXDB_URL INFLUXDB_TOKEN; do
    [ -n "${!var:-}" ] && continue
    value=$(sed -n "s/^[[:space:]]*${var}[[:space:]]*=[[:space:]]*//p" "$file" | tail -n 1)
    value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
    if [ -n "$value" ]; then export "$var=$value"; fi
  done
}

#!/bin/bash
# The official image's environment contract, for Debian's PostgreSQL 15: on an empty PGDATA,
# a cluster whose superuser is POSTGRES_USER with POSTGRES_PASSWORD (password auth over TCP,
# trust on the local socket) and a database POSTGRES_DB; a PGDATA that holds a cluster is used
# as it is.
set -euo pipefail
: "${POSTGRES_PASSWORD:?the stand-in, like postgres:16, needs POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # A private socket for the set-up server, so the healthcheck (pg_isready on the default
    # socket) cannot call the store healthy before the database exists.
    setup_socket=$(mktemp -d)
    chown postgres "$setup_socket"
    as_postgres pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -c unix_socket_directories=$setup_socket" start >/dev/null
    as_postgres psql -v ON_ERROR_STOP=1 -q -h "$setup_socket" -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\" OWNER \"$user\""
    as_postgres pg_ctl -D "$PGDATA" -w -t 60 -m fast stop >/dev/null
    rm -rf "$setup_socket"
  fi
  echo "stand-in: initialised cluster with superuser $user and database $db" >&2
fi
if [ "$#" -gt 0 ]; then exec "$@"; fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'

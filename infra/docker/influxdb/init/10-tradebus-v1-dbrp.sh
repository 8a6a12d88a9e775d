#!/bin/bash
# Runs once, after the influxdb:2.x image's first setup (DOCKER_INFLUXDB_INIT_MODE=setup), with the
# influx CLI already configured with the admin token.
# tradebus speaks InfluxDB's v1-compatible API (claudedocs/decisions/0004-influxdb-v1-api.md):
# map database "$DOCKER_INFLUXDB_INIT_BUCKET" (retention policy autogen) to the initial bucket, so
# /write?db=... and /query?db=... reach it with `Authorization: Token ...`.
set -euo pipefail

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default

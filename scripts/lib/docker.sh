# shellcheck shell=bash
# A Docker engine and the locally built images that stand in for the official ones, for
# scripts/compose-check (no image registry is reachable on the project's machines).
#
#   ensure_docker          install docker.io, docker-compose, debootstrap (Debian, as root) and
#                          start dockerd when nothing answers
#   build_standin_images   the Debian base image (debootstrap, cached by recipe) and the stand-ins
#                          of infra/standins/; exports STANDIN_{BASE,PYTHON,RABBITMQ,POSTGRES,INFLUXDB,PROMETHEUS}_IMAGE

dsay() { printf '[docker] %s\n' "$*" >&2; }

# wait_until SECONDS WHAT COMMAND...: poll COMMAND every 2 s; on time-out say what was waited for.
wait_until() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      dsay "timed out after $limit s waiting for $what"
      return 1
    fi
    sleep 2
  done
}

ensure_docker() {
  local missing=() tool
  for tool in dockerd:docker.io docker-compose:docker-compose debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      dsay "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run as root"
      return 1
    fi
    dsay "installing ${missing[*]} (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
  stop_stale_dockerd
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if ! pgrep -x dockerd >/dev/null; then
    dsay "starting dockerd (log: /var/log/dockerd.log)"
    # Started detached from this script: the engine outlives the check (images stay cached).
    # Without the check's TMPDIR: runc keeps its exec files there, and the check removes it.
    setsid env -u TMPDIR dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  fi
  wait_until 60 "the Docker engine to answer (docker info; log: /var/log/dockerd.log)" docker info
}

# stop_stale_dockerd: an engine that an earlier check started with that check's TMPDIR (since
# removed) fails every `docker exec` ("OCI runtime exec failed: open $TMPDIR/runc-process...");
# stop it so ensure_docker starts a sound one. Images and volumes are on disk and stay.
stop_stale_dockerd() {
  local pid tmp
  pid=$(pgrep -xo dockerd) || return 0
  tmp=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^TMPDIR=//p')
  if [ -z "$tmp" ] || [ -d "$tmp" ]; then return 0; fi
  dsay "dockerd (pid $pid) runs with a removed TMPDIR ($tmp): restarting it"
  kill "$pid"
  wait_until 60 "dockerd (pid $pid) to stop" bash -c "! kill -0 $pid 2>/dev/null"
}

# The recipe of the base image; its hash (with the mirror and the CA bundle) names the cache key.
BASE_SUITE=bookworm

debian_mirror() { # the host's own Debian mirror, so the containers use the same one
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

host_ca_bundle() { echo /etc/ssl/certs/ca-certificates.crt; }

# make_base_rootfs DIR: a minimal Debian with the host's apt sources and CA bundle (pip inside the
# builds trusts the same certificates the host's pip does: PIP_CERT), and no service start-ups
# from package scripts (policy-rc.d), as in Debian's official images.
make_base_rootfs() {
  local dir=$1
  timeout 900 debootstrap --variant=minbase "$BASE_SUITE" "$dir" "$(debian_mirror)" >"$dir.log" 2>&1 || {
    tail -n 20 "$dir.log" >&2
    return 1
  }
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/debian.sources"
    rm -f "$dir/etc/apt/sources.list"
  fi
  mkdir -p "$dir/usr/local/share/tradebus"
  cp "$(host_ca_bundle)" "$dir/usr/local/share/tradebus/host-ca.crt"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/90tradebus"
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
}

base_recipe_hash() {
  { declare -f make_base_rootfs; echo "$BASE_SUITE $(debian_mirror)"; sha256sum "$(host_ca_bundle)"
    cat /etc/apt/sources.list.d/debian.sources 2>/dev/null || true; } | sha256sum | cut -c1-16
}

build_base_image() {
  local image=$1 want have dir
  want=$(base_recipe_hash)
  have=$(docker image inspect -f '{{ index .Config.Labels "tradebus.recipe" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$want" ]; then
    dsay "base image $image: cached (recipe $want)"
    return 0
  fi
  dsay "base image $image: debootstrap --variant=minbase $BASE_SUITE (recipe $want; ~1-4 min)"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tradebus-rootfs.XXXXXX")
  make_base_rootfs "$dir/rootfs" || { rm -rf "$dir"; return 1; }
  tar -C "$dir/rootfs" -c . | docker import \
    --change "LABEL tradebus.recipe=$want" \
    --change "ENV PIP_CERT=/usr/local/share/tradebus/host-ca.crt" \
    --change 'CMD ["bash"]' - "$image" >/dev/null
  rm -rf "$dir"
}

# build_image TAG FOLDER: docker build of a stand-in on the base image (Docker's layer cache makes
# a rebuild with an unchanged base and folder instant).
build_image() {
  local tag=$1 folder=$2 log
  log=$(mktemp)
  local started=$SECONDS
  if ! timeout 1200 docker build -q --build-arg "BASE_IMAGE=$STANDIN_BASE_IMAGE" -t "$tag" "$folder" >"$log" 2>&1; then
    dsay "docker build of $tag from $folder failed:"
    tail -n 40 "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  dsay "image $tag ready ($((SECONDS - started)) s)"
}

build_standin_images() {
  local root=$1
  export STANDIN_BASE_IMAGE=tradebus-standin/debian:$BASE_SUITE
  export STANDIN_PYTHON_IMAGE=tradebus-standin/python:3.11
  export STANDIN_RABBITMQ_IMAGE=tradebus-standin/rabbitmq:3
  export STANDIN_POSTGRES_IMAGE=tradebus-standin/postgres:15
  export STANDIN_INFLUXDB_IMAGE=tradebus-standin/influxdb:1
  export STANDIN_PROMETHEUS_IMAGE=tradebus-standin/prometheus:2
  build_base_image "$STANDIN_BASE_IMAGE"
  # In parallel: a cold build is mostly package downloads (~1.5 min each one after another).
  local pids=() pid failed=0
  build_image "$STANDIN_PYTHON_IMAGE" "$root/infra/standins/python" & pids+=($!)
  build_image "$STANDIN_RABBITMQ_IMAGE" "$root/infra/standins/rabbitmq" & pids+=($!)
  build_image "$STANDIN_POSTGRES_IMAGE" "$root/infra/standins/postgres" & pids+=($!)
  build_image "$STANDIN_INFLUXDB_IMAGE" "$root/infra/standins/influxdb" & pids+=($!)
  build_image "$STANDIN_PROMETHEUS_IMAGE" "$root/infra/standins/prometheus" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  return "$failed"
}

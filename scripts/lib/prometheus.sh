# shellcheck shell=bash
# The Prometheus server binary for the metrics tests (tests/system/test_system_metrics.py): the
# tests start their own `prometheus` on a temporary directory, so only the binary is needed.
# Sourced by scripts/test. Exports PROMETHEUS_BIN when it is found or installed.

psay() { printf '[prometheus] %s\n' "$*" >&2; }

ensure_prometheus() {
  if [ -n "${PROMETHEUS_BIN:-}" ] && [ -x "$PROMETHEUS_BIN" ]; then return 0; fi
  if ! command -v prometheus >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      psay "prometheus is not installed (Debian: apt-get install prometheus); the metrics test fails under CI=true and skips otherwise"
      return 1
    fi
    psay "installing Debian's prometheus package (apt-get)"
    # The package's own service is not wanted (the tests run their own server): no recommends,
    # and a lock timeout because other installs may hold the dpkg lock.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
      prometheus >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        prometheus >/dev/null
    } || { psay "apt-get install prometheus failed"; return 1; }
  fi
  PROMETHEUS_BIN=$(command -v prometheus)
  export PROMETHEUS_BIN
}

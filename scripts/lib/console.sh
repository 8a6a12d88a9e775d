# shellcheck shell=bash
# The operator console's browser side: its chart library (npm) and, for the browser tests, a
# headless Chromium (Debian's package). Sourced by scripts/test, scripts/run and
# scripts/build-console.
#
#   build_console     npm ci + npm run build in agents/api/frontend (Node and npm installed with
#                     apt-get when missing, as root on Debian); again only when package-lock.json
#                     changed. Output: agents/api/static/vendor/ (gitignored).
#   ensure_chromium   /usr/bin/chromium, installed with apt-get when missing (as root on Debian).
# Both return non-zero and say what is missing when they cannot do their job.

csay() { printf '[console] %s\n' "$*" >&2; }

# apt_install PACKAGE...: install Debian packages as root; waits for another apt run's lock.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    csay "missing: $*; install them (Debian: apt-get install $*) or run this as root on Debian"
    return 1
  fi
  csay "installing $* (apt-get)"
  local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    "${apt[@]}" update >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null
  } || { csay "apt-get install $* failed"; return 1; }
}

build_console() {
  local root=$1
  local frontend="$root/agents/api/frontend" vendor="$root/agents/api/static/vendor"
  local stamp="$vendor/.built-from" want
  want=$(sha256sum "$frontend/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$vendor/lightweight-charts.mjs" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    apt_install nodejs npm || return 1
  fi
  mkdir -p "$vendor"
  # Several runs may start at once (helpers, CI retries): one builds, the others wait.
  (
    flock 8
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
    csay "building the console's assets (npm ci in agents/api/frontend)"
    cd "$frontend" || exit 1
    # The registry's certificate may come from the host's CA bundle (a proxy): node trusts it too.
    NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-${PIP_CERT:-}} \
      npm ci --no-audit --no-fund --loglevel=error >&2 && npm run --silent build >&2 || exit 1
    echo "$want" >"$stamp"
  ) 8>"$vendor/.build.lock" || { csay "npm could not build the console's assets (see above)"; return 1; }
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  # Playwright's own browser download is not reachable here; Debian's build is driven instead.
  apt_install chromium
}

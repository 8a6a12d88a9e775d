# shellcheck shell=bash
# Create .venv in the project root and install the project with its dev extras, again only when
# pyproject.toml changed since the last install.

ensure_venv() {
  local root=$1 python=${PYTHON:-python3}
  local venv="$root/.venv" stamp="$root/.venv/.tradebus-installed"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "[venv] tradebus needs Python >= 3.11; $python is $("$python" --version 2>&1)" >&2
    return 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    echo "[venv] creating $venv" >&2
    "$python" -m venv "$venv"
  fi
  # Several test runs may start at once (helpers, CI retries): one installs, the others wait.
  exec 9>"$venv/.install.lock"
  flock 9
  local want
  want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[venv] installing tradebus with its dev extras (first run takes a few minutes)" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -e "$root[dev]" >&2
    echo "$want" >"$stamp"
  fi
  flock -u 9
}

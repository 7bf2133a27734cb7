#!/usr/bin/env bash
# Shared, idempotent set-up for scripts/serve and scripts/test.
# Usage: source scripts/bootstrap.sh; bootstrap_python [extras]; bootstrap_npm; bootstrap_postgres;
#        bootstrap_chromium; bootstrap_wrk (bench only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

_stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

bootstrap_python() {
  local extras="${1:-}"
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "aonode needs Python >= 3.11 (found: $("$py" --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV" >&2
    "$py" -m venv "$VENV"
  fi
  local want hash
  hash="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  want="${hash}-${extras}"
  # an install with the dev extras also serves a plain request (serve after test)
  if [ -z "$extras" ] && _stamp_ok "$VENV/.aonode-stamp" "${hash}-dev"; then
    want="${hash}-dev"
  fi
  if ! _stamp_ok "$VENV/.aonode-stamp" "$want"; then
    echo "bootstrap: installing aonode${extras:+[$extras]} into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
    echo "$want" > "$VENV/.aonode-stamp"
  fi
}

_apt_install() {
  if [ "$(id -u)" != "0" ]; then
    echo "bootstrap: need root to apt-get install $*; install them and re-run" >&2
    exit 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

bootstrap_postgres() {
  # The tests run a real PostgreSQL server (tests/pg_fixture.py): initdb + postgres binaries.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "bootstrap: installing postgresql (Debian)" >&2
    _apt_install postgresql
  fi
}

bootstrap_chromium() {
  # The dashboard's browser test drives Debian's chromium (Playwright, executable_path);
  # browsers are never downloaded by Playwright itself.
  if ! command -v chromium >/dev/null 2>&1; then
    echo "bootstrap: installing chromium (Debian)" >&2
    _apt_install chromium
  fi
}

bootstrap_npm() {
  local dir="$ROOT/tests/interop"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: installing nodejs and npm (Debian)" >&2
    _apt_install nodejs npm
  fi
  local want
  want="$(cat "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ ! -d "$dir/node_modules" ] || ! _stamp_ok "$dir/node_modules/.aonode-stamp" "$want"; then
    echo "bootstrap: npm ci in tests/interop (arbundles, arlocal)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$dir/node_modules/.aonode-stamp"
  fi
}

bootstrap_wrk() {
  # Only bench/ needs it (bench/wrkload.py): a C load generator cheap enough not to eat the
  # cores it measures. The tests never use it.
  if ! command -v wrk >/dev/null 2>&1; then
    echo "bootstrap: installing wrk (Debian)" >&2
    _apt_install wrk
  fi
}

#!/usr/bin/env bash
# Installs what the project needs on a fresh clone, and does nothing when it is
# already installed: node_modules from package-lock.json, and the Python
# virtualenv .venv/ from requirements.txt. Each install is keyed by a hash of
# its lock file, so a re-run is a couple of hash checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }
installed=0
hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

node_key=$(hash_of package-lock.json)
if [ "$(cat node_modules/.pantheon-installed 2>/dev/null)" != "$node_key" ]; then
  log "installing node modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$node_key" > node_modules/.pantheon-installed
  installed=1
fi

py_key=$(hash_of requirements.txt)
if [ "$(cat .venv/.pantheon-installed 2>/dev/null)" != "$py_key" ]; then
  python=${PANTHEON_PYTHON:-python3}
  "$python" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"' \
    || { log "Python 3.10 or newer is needed (set PANTHEON_PYTHON)"; exit 1; }
  [ -x .venv/bin/python ] || { log "creating .venv"; "$python" -m venv .venv; }
  log "installing Python requirements into .venv (pip)"
  .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
  echo "$py_key" > .venv/.pantheon-installed
  installed=1
fi
[ "$installed" -eq 0 ] || log "installed in ${SECONDS} s"

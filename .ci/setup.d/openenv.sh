#!/usr/bin/env bash
# Build a separate virtualenv with the real PyPI `openenv` package for the OpenEnv interop tests
# (tests/integration/envserver/test_openenv.py) and benchmarks/server_load.py's OpenEnv column.
# openenv pins packages (pillow, ...) at versions that differ from the project's main venv, so it lives
# apart, at $TURNGYM_OPENENV_VENV (default /opt/turngym-openenv), with turngym installed without
# dependencies plus the core packages turngym imports; tests drive it as a subprocess.
# Idempotent: does nothing when that venv already imports openenv. A failure is reported and does not
# stop CI: the openenv tests then skip and say why.
set -euo pipefail
trap 'echo "openenv.sh: install failed at line $LINENO; the openenv tests will skip" >&2; exit 0' ERR

VENV="${TURNGYM_OPENENV_VENV:-/opt/turngym-openenv}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import openenv, turngym, websockets" >/dev/null 2>&1; then
  echo "openenv.sh: openenv is present in $VENV"
  exit 0
fi
PY="$(command -v python3.11 || command -v python3)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q openenv==0.10.0 websockets
"$VENV/bin/pip" install -q gymnasium pydantic fastapi uvicorn httpx typer rich pyyaml bm25s numpy
"$VENV/bin/pip" install -q --no-deps -e "$REPO"
"$VENV/bin/python" -c "import openenv, turngym; print('openenv.sh: openenv ready in $VENV')"

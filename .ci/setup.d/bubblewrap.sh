#!/usr/bin/env bash
# Install bubblewrap, which the local sandbox backend uses for its namespaces and hidden file
# system (without it the backend falls back to rlimits only and says so in its status).
# Idempotent; a failure is reported and does not stop CI (the namespace-only tests then skip).
set -euo pipefail
trap 'echo "bubblewrap.sh: install failed at line $LINENO; sandboxes fall back to process isolation" >&2; exit 0' ERR

if command -v bwrap >/dev/null 2>&1; then
  echo "bubblewrap.sh: $(bwrap --version) is present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bubblewrap.sh: needs root to install bubblewrap; sandboxes fall back to process isolation" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends bubblewrap
bwrap --version

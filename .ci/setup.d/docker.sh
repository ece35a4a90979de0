#!/usr/bin/env bash
# Start a Docker engine and build turngym's sandbox image, for the docker sandbox backend's tests.
#
# Idempotent and meant for root on a Debian machine with no container registry:
#   1. installs docker.io and debootstrap with apt if they are missing;
#   2. starts dockerd in the background unless an engine already answers, and waits for it;
#   3. builds the image from a minimal Debian root file system
#      (debootstrap --variant=minbase --include=python3-minimal,libpython3.11-stdlib bookworm: the
#      minimal interpreter lacks json, resource, shutil, decimal, ... which the sandbox worker and
#      ordinary programs need) and `docker import`s it, labelled with the root file system's id.
# The root file system tarball is cached (TURNGYM_CACHE, default /var/cache/turngym), so a re-run
# with a fresh engine only re-imports it (seconds) and a run with the image present does nothing.
# A failure (no mirror, no kernel support for containers) is reported and does not stop CI: the
# docker backend's tests then skip themselves, naming the reason.
set -euo pipefail
trap 'echo "docker.sh: setup failed at line $LINENO; the docker sandbox tests will be skipped" >&2; exit 0' ERR

IMAGE="${TURNGYM_SANDBOX_IMAGE:-turngym-sandbox:bookworm}"
CACHE="${TURNGYM_CACHE:-/var/cache/turngym}"
MIRROR="${TURNGYM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3-minimal,libpython3.11-stdlib
ROOTFS_ID="bookworm-minbase-${PACKAGES//,/-}"
LOG=/var/log/turngym-dockerd.log

if [ "$(id -u)" -ne 0 ]; then
  echo "docker.sh: needs root (it installs packages and starts dockerd); the docker tests will be skipped" >&2
  exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "docker.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker.sh: starting dockerd (log: $LOG)"
  nohup dockerd >"$LOG" 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "docker.sh: dockerd did not answer within 60 s; the end of its log:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 0
  fi
fi

label="$(docker image inspect -f '{{ index .Config.Labels "turngym.rootfs" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$label" = "$ROOTFS_ID" ]; then
  echo "docker.sh: image $IMAGE ($ROOTFS_ID) is present"
  exit 0
fi

mkdir -p "$CACHE"
tarball="$CACHE/rootfs-$ROOTFS_ID.tar"
if [ ! -s "$tarball" ]; then
  root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$root" "$tarball.partial"' EXIT
  echo "docker.sh: debootstrap bookworm into $root (about 2 minutes)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
echo "docker.sh: importing $tarball as $IMAGE"
docker import --change 'CMD ["/bin/sh"]' --change "LABEL turngym.rootfs=$ROOTFS_ID" "$tarball" "$IMAGE" >/dev/null
docker run --rm --network none "$IMAGE" python3 -c 'import json, resource, shutil; print("sandbox image ok")'

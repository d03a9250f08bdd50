#!/usr/bin/env bash
# Builds the test images locally, with no registry:
#   glfs-target/debian-base:bookworm  debootstrap --variant=minbase bookworm | docker import
#   glfs-target/initiators:<key>      docker/initiators.Dockerfile on top (also tagged :latest)
# <key> hashes the Dockerfile, the relay source and the VM image key, so an unchanged input set
# is never rebuilt. Needs a running dockerd, root, debootstrap. Prints the initiators tag last.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# The Debian mirror this machine's apt uses (GLFS_VM_MIRROR overrides); no host is named here.
. "$REPO/test/vm/lib/apt-mirror.sh"
MIRROR="${GLFS_VM_MIRROR:-$(apt_mirror bookworm)}"
[ -n "$MIRROR" ] || { echo "docker/build.sh: no 'deb' source for bookworm in apt's sources; set GLFS_VM_MIRROR" >&2; exit 2; }
BASE=glfs-target/debian-base:bookworm
t0=$(date +%s.%N)
ts() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

docker info >/dev/null 2>&1 || { echo "docker/build.sh: no Docker daemon" >&2; exit 2; }

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "[$(ts)s] $BASE: debootstrap minbase bookworm + docker import" >&2
  work="$(mktemp -d /var/tmp/glfs-docker-base-XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  echo "[$(ts)s] $BASE imported" >&2
fi

VM_DIR="$(bash "$REPO/test/vm/build-image.sh" | tail -1)"
key="$( { cat "$HERE/initiators.Dockerfile" "$REPO/test/vm/relay.c"; cat "$VM_DIR/manifest.json"; docker image inspect -f '{{.Id}}' "$BASE"; } | sha256sum | cut -c1-16)"
TAG="glfs-target/initiators:$key"
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "[$(ts)s] $TAG present" >&2
else
  echo "[$(ts)s] building $TAG" >&2
  ctx="$(mktemp -d /var/tmp/glfs-docker-ctx-XXXXXX)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$REPO/test/vm/relay.c" "$ctx/"
  mkdir "$ctx/vm"
  cp "$VM_DIR/vmlinuz" "$VM_DIR/initrd.img" "$VM_DIR/manifest.json" "$ctx/vm/"
  # --network host: apt inside the build reaches the same Debian mirror the host uses.
  log="$ctx.log"
  DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE="$BASE" -t "$TAG" -f "$HERE/initiators.Dockerfile" "$ctx" >"$log" 2>&1 ||
    { tail -60 "$log" >&2; rm -f "$log"; exit 1; }
  grep -E '^(Step|Successfully)' "$log" >&2 || true
  rm -f "$log"
  rm -rf "$ctx"
  trap - EXIT
fi
docker tag "$TAG" glfs-target/initiators:latest
echo "[$(ts)s] initiators image: $TAG" >&2
echo "$TAG"

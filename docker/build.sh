#!/usr/bin/env bash
# Builds the images locally, with no registry:
#   glfs-target/debian-base:bookworm  debootstrap --variant=minbase bookworm | docker import
#   glfs-target/target:<key>          docker/target.Dockerfile on top: the package (npm pack of
#                                     this checkout, which needs dist/: npm ci builds it), its
#                                     production node_modules and this host's node (also :latest)
#   glfs-target/initiators:<key>      docker/initiators.Dockerfile on top (also tagged :latest)
# <key> hashes each image's inputs (Dockerfile, package, lock file, node; relay source and VM
# image key), so an unchanged input set is never rebuilt. Needs a running dockerd, root,
# debootstrap. Prints the initiators tag last.
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

# docker_build TAG DOCKERFILE CONTEXT: builds on $BASE with host networking (apt inside a build
# reaches the same Debian mirror the host uses); prints the steps, or the log's tail on failure.
docker_build() {
  local log="$3.log"
  DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE="$BASE" -t "$1" -f "$2" "$3" >"$log" 2>&1 ||
    { tail -60 "$log" >&2; rm -f "$log"; exit 1; }
  grep -E '^(Step|Successfully)' "$log" >&2 || true
  rm -f "$log"
}

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

# The target image: the npm package as `npm pack` makes it, its production dependencies pruned
# from this checkout's node_modules (fs-ext already built for this node), the package's own addon
# (build/Release), and this host's node.
[ -f "$REPO/dist/cli.js" ] || { echo "docker/build.sh: $REPO/dist is missing; run npm ci (or npm run build) first" >&2; exit 2; }
NODE_BIN="$(readlink -f "$(command -v node)")"
tctx="$(mktemp -d /var/tmp/glfs-docker-target-XXXXXX)"
trap 'rm -rf "$tctx"' EXIT
tgz="$(cd "$REPO" && npm pack --ignore-scripts --silent --pack-destination "$tctx" | tail -1)"
tkey="$( { cat "$HERE/target.Dockerfile"; tar -xzOf "$tctx/$tgz"; cat "$REPO/package-lock.json"; "$NODE_BIN" --version; docker image inspect -f '{{.Id}}' "$BASE"; } | sha256sum | cut -c1-16)"
TARGET_TAG="glfs-target/target:$tkey"
if docker image inspect "$TARGET_TAG" >/dev/null 2>&1; then
  echo "[$(ts)s] $TARGET_TAG present" >&2
else
  echo "[$(ts)s] building $TARGET_TAG" >&2
  tar -xzf "$tctx/$tgz" -C "$tctx" && mv "$tctx/package" "$tctx/app"
  cp "$REPO/package-lock.json" "$tctx/app/"
  cp -a "$REPO/node_modules/." "$tctx/app/node_modules/"
  # The package's own addon (native/, built by npm ci's install script): reads of cached data inline.
  mkdir -p "$tctx/app/build/Release" && cp "$REPO/build/Release/file_io.node" "$tctx/app/build/Release/"
  (cd "$tctx/app" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund >/dev/null)
  cp "$NODE_BIN" "$tctx/node"
  docker_build "$TARGET_TAG" "$HERE/target.Dockerfile" "$tctx"
fi
rm -rf "$tctx"
trap - EXIT
docker tag "$TARGET_TAG" glfs-target/target:latest
echo "[$(ts)s] target image: $TARGET_TAG" >&2

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
  docker_build "$TAG" "$HERE/initiators.Dockerfile" "$ctx"
  rm -rf "$ctx"
  trap - EXIT
fi
docker tag "$TAG" glfs-target/initiators:latest
echo "[$(ts)s] initiators image: $TAG" >&2
echo "$TAG"

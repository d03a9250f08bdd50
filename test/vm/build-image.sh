#!/usr/bin/env bash
# Builds the initiator VM: a Debian bookworm minbase rootfs (open-iscsi, xfsprogs, e2fsprogs,
# multipath-tools, sg3-utils, fio, udev, kmod, iproute2) packed as ONE initramfs, plus a Debian
# kernel. No disk image: qemu boots it with -kernel/-initrd.
#
# Kernel (--kernel KIND or GLFS_VM_KERNEL; default generic):
#   generic  linux-image-amd64: has the SCSI device handlers (scsi_dh_alua), which dm-multipath's
#            hardware_handler "1 alua" and ALUA path priorities need.
#   cloud    linux-image-cloud-amd64: no CONFIG_SCSI_DH, so no ALUA handler.
#
# The result is cached outside the repo, keyed by a hash of this script, test/vm/guest/*, the
# kernel kind and the mirror:
#   ${GLFS_VM_CACHE:-/var/cache/glfs-target-vm}/<hash>/{vmlinuz,initrd.img,manifest.json}
# A finished build is never rebuilt (GLFS_VM_REBUILD=1 forces it). Prints the image directory
# on the last line of stdout. Needs root and debootstrap + cpio + zstd (.ci/run installs them).
#
# Packages come from the Debian mirror this machine's apt is configured with (the first
# deb source for the suite in /etc/apt/sources.list{,.d/*.{list,sources}}), through apt's
# HTTP proxy if it has one; GLFS_VM_MIRROR overrides. No mirror host is named here.
#
# Env: GLFS_VM_CACHE, GLFS_VM_KERNEL, GLFS_VM_MIRROR, GLFS_VM_REBUILD.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${GLFS_VM_CACHE:-/var/cache/glfs-target-vm}"
SUITE=bookworm
KIND="${GLFS_VM_KERNEL:-generic}"
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) KIND="${2:?--kernel needs generic or cloud}"; shift 2 ;;
    --kernel=*) KIND="${1#--kernel=}"; shift ;;
    *) echo "usage: build-image.sh [--kernel generic|cloud]" >&2; exit 2 ;;
  esac
done
case "$KIND" in
  generic) KPKG=linux-image-amd64 ;;
  cloud) KPKG=linux-image-cloud-amd64 ;;
  *) echo "build-image: unknown kernel kind '$KIND' (generic or cloud)" >&2; exit 2 ;;
esac
PACKAGES=(open-iscsi xfsprogs e2fsprogs multipath-tools sg3-utils fio udev kmod iproute2 "$KPKG")
# Modules the guest loads (guest/init, the scenarios); these and their dependencies are kept,
# everything else under /lib/modules is dropped to keep the initramfs small. Names the kernel
# does not have (scsi_dh_alua in the cloud kernel, built-ins) are skipped.
MODULES=(virtio_pci virtio_net virtio_console virtio_rng iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi
  sd_mod sg dm_mod dm_multipath dm_round_robin dm_service_time dm_queue_length scsi_dh_alua xfs ext4
  crc32c_generic crc32c_intel libcrc32c crc32_pclmul crct10dif_pclmul)

# apt_mirror: shared with docker/build.sh.
. "$HERE/lib/apt-mirror.sh"
MIRROR="${GLFS_VM_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(apt_mirror "$SUITE")" || { echo "build-image: no 'deb' source for $SUITE in apt's sources; set GLFS_VM_MIRROR" >&2; exit 2; }
fi
MIRROR="${MIRROR%/}"
# debootstrap's wget does not read apt.conf: hand it apt's proxy, if one is configured.
if [ -z "${http_proxy:-}" ] && command -v apt-config >/dev/null; then
  APT_PROXY=""
  eval "$(apt-config shell APT_PROXY Acquire::http::Proxy)"
  [ -n "$APT_PROXY" ] && [ "$APT_PROXY" != DIRECT ] && export http_proxy="$APT_PROXY"
fi

key="$( { cat "$0"; for f in "$HERE"/guest/*; do echo "== ${f##*/}"; cat "$f"; done; echo "$MIRROR $SUITE $KIND ${PACKAGES[*]} ${MODULES[*]}"; } | sha256sum | cut -c1-16)"
OUT="$CACHE/$key"

if [ -f "$OUT/manifest.json" ] && [ "${GLFS_VM_REBUILD:-0}" != 1 ]; then
  echo "vm image cached: $OUT" >&2
  echo "$OUT"
  exit 0
fi

for tool in debootstrap cpio zstd; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "build-image: '$tool' missing (apt-get install debootstrap cpio zstd)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "build-image: must run as root (debootstrap, mknod)" >&2; exit 2; }

mkdir -p "$CACHE"
# One builder at a time per cache (two test runs may race to build the same key).
exec 9>"$CACHE/.build.lock"
flock 9
if [ -f "$OUT/manifest.json" ] && [ "${GLFS_VM_REBUILD:-0}" != 1 ]; then echo "$OUT"; exit 0; fi

t0=$(date +%s.%N)
ts() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
WORK="$(mktemp -d "$CACHE/.build-XXXXXX")"
cleanup() { umount -R "$WORK/rootfs/proc" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ROOT="$WORK/rootfs"

echo "[$(ts)s] debootstrap $SUITE (minbase) from $MIRROR" >&2
debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -40 "$WORK/debootstrap.log" >&2; exit 1; }
echo "[$(ts)s] debootstrap done" >&2

KVER="$(ls "$ROOT/lib/modules" | sort -V | tail -1)"
[ -n "$KVER" ] && [ -f "$ROOT/boot/vmlinuz-$KVER" ] || { echo "build-image: no kernel in rootfs" >&2; exit 1; }
mkdir -p "$WORK/out"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"

# Keep only the modules we load (and their dependencies).
keep="$WORK/keep-modules"
: >"$keep"
for m in "${MODULES[@]}"; do
  chroot "$ROOT" modprobe -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }' >>"$keep" || true
done
# One pass over the module tree (the generic kernel has ~4000 modules: no process per file).
( cd "$ROOT" && find "lib/modules/$KVER/kernel" -name '*.ko*' | sed 's|^|/|' | { grep -vxFf "$keep" || true; } |
  sed 's|^/||' | xargs -r rm -f )
chroot "$ROOT" depmod "$KVER"
# What the scenarios cannot do without must have survived (cloud has no SCSI device handlers).
missing_mods=()
for m in iscsi_tcp sd_mod dm_multipath dm_round_robin xfs ext4 $([ "$KIND" = cloud ] || echo scsi_dh_alua); do
  chroot "$ROOT" modprobe -S "$KVER" --show-depends "$m" >/dev/null 2>&1 || missing_mods+=("$m")
done
[ ${#missing_mods[@]} -eq 0 ] || { echo "build-image: modules missing after trimming: ${missing_mods[*]}" >&2; exit 1; }

# Slim the rootfs: docs, man pages, locales, apt caches, the kernel image and initramfs-tools' output.
# Also udev's hardware database (22 MB; no rule the scenarios rely on reads it) and python3
# (only xfs_scrub_all and fio's helper scripts use it): the kernel unpacks the whole initramfs
# at every boot, ~3 s per 100 MB under TCG.
rm -rf "$ROOT"/usr/share/{doc,man,info,locale,lintian,bash-completion} "$ROOT"/var/cache/apt/* \
  "$ROOT"/var/lib/apt/lists/* "$ROOT"/boot/* "$ROOT"/var/log/* "$ROOT"/usr/share/zoneinfo \
  "$ROOT"/usr/lib/udev/hwdb.bin "$ROOT"/usr/lib/udev/hwdb.d "$ROOT"/etc/udev/hwdb.bin \
  "$ROOT"/usr/lib/python3* "$ROOT"/usr/lib/python3.* "$ROOT"/usr/bin/python3*

# Guest init + agent, and a few settings.
install -m 0755 "$HERE/guest/init" "$ROOT/init"
install -m 0755 "$HERE/guest/agent" "$ROOT/usr/local/sbin/vm-agent"
echo glfs-vm >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost glfs-vm\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/resolv.conf"
rm -f "$ROOT/etc/iscsi/initiatorname.iscsi"

echo "[$(ts)s] packing initramfs" >&2
# zstd -3: small enough to load quickly, cheap to unpack under TCG.
( cd "$ROOT" && find . -xdev -print0 | cpio --null -o -H newc --quiet ) | zstd -q -3 -T0 >"$WORK/out/initrd.img"

pkgs_json="$(chroot "$ROOT" dpkg-query -W -f='${Package}=${Version}\n' "${PACKAGES[@]}" "linux-image-$KVER" 2>/dev/null |
  awk 'BEGIN { printf "{" } { split($0, a, "="); printf "%s\"%s\":\"%s\"", (NR > 1 ? "," : ""), a[1], a[2] } END { printf "}" }')"
cat >"$WORK/out/manifest.json" <<EOF
{"key":"$key","suite":"$SUITE","kernelKind":"$KIND","mirror":"$MIRROR","kernel":"$KVER","packages":$pkgs_json,
 "initrdBytes":$(stat -c %s "$WORK/out/initrd.img"),"builtAt":"$(date -u +%FT%TZ)","buildSeconds":$(ts)}
EOF
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
echo "[$(ts)s] vm image ready: $OUT ($(du -sh "$OUT" | cut -f1))" >&2
echo "$OUT"

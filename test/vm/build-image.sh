#!/usr/bin/env bash
# Builds the initiator VM: a Debian bookworm minbase rootfs (open-iscsi, xfsprogs, multipath-tools,
# sg3-utils, fio, udev, kmod, iproute2) packed as ONE initramfs, plus the linux-image-cloud-amd64
# kernel. No disk image: qemu boots it with -kernel/-initrd.
#
# The result is cached outside the repo, keyed by a hash of this script and test/vm/guest/*:
#   ${GLFS_VM_CACHE:-/var/cache/glfs-target-vm}/<hash>/{vmlinuz,initrd.img,manifest.json}
# A finished build is never rebuilt (GLFS_VM_REBUILD=1 forces it). Prints the image directory
# on the last line of stdout. Needs root and debootstrap + cpio (.ci/run installs them).
#
# Env: GLFS_VM_CACHE, GLFS_VM_MIRROR (default http://deb.debian.org/debian), GLFS_VM_REBUILD.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${GLFS_VM_CACHE:-/var/cache/glfs-target-vm}"
MIRROR="${GLFS_VM_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES=(open-iscsi xfsprogs multipath-tools sg3-utils fio udev kmod iproute2 linux-image-cloud-amd64)
# Modules the guest loads; everything else under /lib/modules is dropped to keep the initramfs small.
MODULES=(virtio_pci virtio_net virtio_console virtio_rng iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi
  sd_mod sg dm_mod dm_multipath dm_round_robin dm_service_time scsi_dh_alua xfs crc32c_generic crc32c_intel
  libcrc32c crc32_pclmul crct10dif_pclmul)

key="$( { cat "$0"; for f in "$HERE"/guest/*; do echo "== ${f##*/}"; cat "$f"; done; echo "$MIRROR $SUITE ${PACKAGES[*]}"; } | sha256sum | cut -c1-16)"
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
( cd "$ROOT" && find "lib/modules/$KVER/kernel" -name '*.ko*' ) | while read -r f; do
  grep -qxF "/$f" "$keep" || rm -f "$ROOT/$f"
done
chroot "$ROOT" depmod "$KVER"

# Slim the rootfs: docs, man pages, locales, apt caches, the kernel image and initramfs-tools' output.
rm -rf "$ROOT"/usr/share/{doc,man,info,locale,lintian,bash-completion} "$ROOT"/var/cache/apt/* \
  "$ROOT"/var/lib/apt/lists/* "$ROOT"/boot/* "$ROOT"/var/log/* "$ROOT"/usr/share/zoneinfo

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
{"key":"$key","suite":"$SUITE","mirror":"$MIRROR","kernel":"$KVER","packages":$pkgs_json,
 "initrdBytes":$(stat -c %s "$WORK/out/initrd.img"),"builtAt":"$(date -u +%FT%TZ)","buildSeconds":$(ts)}
EOF
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
echo "[$(ts)s] vm image ready: $OUT ($(du -sh "$OUT" | cut -f1))" >&2
echo "$OUT"

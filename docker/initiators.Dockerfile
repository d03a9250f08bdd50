# The initiator toolbox for the e2e tests, run through testcontainers with host networking:
#  - libiscsi-bin (iscsi-ls, iscsi-inq, iscsi-readcapacity16, iscsi-test-cu, ...)
#  - qemu-utils + qemu-block-extra (qemu-img / qemu-io with the iscsi:// block driver)
#  - qemu-system-x86 + the initiator VM (kernel + initramfs from test/vm/build-image.sh) and the
#    guestfwd relay, so the kernel initiator (open-iscsi, multipath, fio) runs from here too.
# The base image comes from debootstrap + `docker import` (docker/build.sh): no registry needed.
ARG BASE=glfs-target/debian-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libiscsi-bin qemu-utils qemu-block-extra qemu-system-x86 gcc libc6-dev xfsprogs procps \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
COPY relay.c /opt/glfs-vm/relay.c
RUN gcc -O2 -Wall -o /opt/glfs-vm/relay /opt/glfs-vm/relay.c
COPY vm/ /opt/glfs-vm/image/
LABEL org.glfs-target.role=initiators
CMD ["sleep", "infinity"]

# The target itself: glfs-target serving LUN files from the gluster node's FUSE mount, run with
# host networking as that node's iSCSI service (deploy/kubernetes/daemonset.yaml runs the same).
#   docker run -d --network host -v /etc/glfs-target:/etc/glfs-target:ro \
#     -v /mnt/gluster:/mnt/gluster:rshared glfs-target/target:latest
# The context is made by docker/build.sh: app/ = bin, dist, package.json, the production
# node_modules (fs-ext already built) and build/Release (the package's addon), node = the build host's Node.js binary (Debian 12 glibc,
# like this base). No registry and no compiler are needed here.
ARG BASE=glfs-target/debian-base:bookworm
FROM ${BASE}
COPY node /usr/local/bin/node
COPY app/ /opt/glfs-target/
RUN ln -s /opt/glfs-target/bin/glfs-target.js /usr/local/bin/glfs-target \
 && glfs-target --version \
 && node -e "require('/opt/glfs-target/build/Release/file_io.node')"
# Node name among the servers sharing a LUN file: the host's name (host networking shares it);
# set GLFS_TARGET_NODE to override. Logs are JSON lines on stdout (no TTY).
LABEL org.glfs-target.role=target
EXPOSE 3260
STOPSIGNAL SIGTERM
ENTRYPOINT ["glfs-target"]
CMD ["serve", "--config", "/etc/glfs-target/target.json"]

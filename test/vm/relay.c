/*
 * guestfwd relay for the initiator VM. QEMU's user network (slirp) spawns one of these per guest
 * TCP connection to a guestfwd address ("guestfwd=tcp:10.0.2.100:PORT-cmd:relay PORT LOG"), with
 * stdin, stdout AND stderr all connected to that guest connection (so this program must never
 * print anything: diagnostics go to LOG).
 *
 * It connects to 127.0.0.1:PORT and nothing else: the address is fixed here, only the port is an
 * argument, so the VM can reach the host's loopback and no other address.
 *
 * TCP_NODELAY is set, and TCP_QUICKACK is re-armed after every read (Linux clears it again on its
 * own), so pipelined iSCSI PDUs are not held back by delayed ACKs. RELAY_NO_QUICKACK=1 and
 * RELAY_NO_NODELAY=1 turn those off, to measure what they are worth.
 *
 * A target port that refuses the connection (its server is down or restarting) is tried again
 * every CONNECT_RETRY_MS for up to RELAY_CONNECT_WAIT_S seconds (default 30), while the guest
 * keeps its side open. slirp has already accepted the guest's connection when this program runs,
 * so closing it at once would show the guest a connection that opens and drops before the login
 * (no network does that for a dead port: the SYN is refused or unanswered). open-iscsi's iscsid
 * (2.1.8, Debian 12) can then stay in its reopen loop for good, binding each new connection to a
 * session the kernel still holds as failed ("can't bind conn", open-iscsi issue #387, PR #388),
 * so a restarted target would never be logged into again. Waiting looks like a host that does not
 * answer yet; iscsid's own login timeout (15 s) ends the attempt as on a real network.
 *
 * Build: cc -O2 -o relay relay.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static FILE *logf;

static void logmsg(const char *fmt, ...) {
  if (!logf) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(logf, "%ld.%03ld relay[%d] ", (long)ts.tv_sec, ts.tv_nsec / 1000000, (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  vfprintf(logf, fmt, ap);
  va_end(ap);
  fputc('\n', logf);
  fflush(logf);
}

static int quickack = 1;

#define CONNECT_RETRY_MS 250

/* Sleeps CONNECT_RETRY_MS unless the guest closes its side meanwhile; returns 1 if it did. */
static int guest_gone(int guest) {
  struct pollfd p = {.fd = guest, .events = POLLRDHUP};
  if (poll(&p, 1, CONNECT_RETRY_MS) <= 0) return 0;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void arm_quickack(int fd) {
  if (!quickack) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Copies what is readable on `from` to `to`. Returns bytes moved, 0 on EOF, -1 on error. */
static ssize_t pump(int from, int to, int tcp_from, char *buf, size_t cap) {
  ssize_t n = read(from, buf, cap);
  if (n < 0) return (errno == EINTR || errno == EAGAIN) ? 1 : -1;
  if (tcp_from) arm_quickack(from);
  if (n == 0) return 0;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = to, .events = POLLOUT};
        poll(&p, 1, 1000);
        continue;
      }
      return -1;
    }
    off += w;
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  long port = strtol(argv[1], NULL, 10);
  if (port < 1 || port > 65535) return 2;
  if (argc >= 3) logf = fopen(argv[2], "a");
  if (getenv("RELAY_NO_QUICKACK")) quickack = 0;
  int nodelay = getenv("RELAY_NO_NODELAY") ? 0 : 1;
  signal(SIGPIPE, SIG_IGN);

  /* slirp hands us one socket as fd 0/1/2. */
  int guest = 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) { logmsg("socket: %s", strerror(errno)); return 1; }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay) < 0) logmsg("TCP_NODELAY: %s", strerror(errno));
  const char *wait_env = getenv("RELAY_CONNECT_WAIT_S");
  long wait_ms = (wait_env ? strtol(wait_env, NULL, 10) : 30) * 1000;
  for (long waited = 0;; waited += CONNECT_RETRY_MS) {
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) break;
    int err = errno;
    if (err != ECONNREFUSED || waited >= wait_ms || guest_gone(guest)) {
      logmsg("connect 127.0.0.1:%ld: %s (after %ld ms)", port, strerror(err), waited);
      return 1;
    }
    if (waited == 0) logmsg("connect 127.0.0.1:%ld: %s; trying again for up to %ld ms", port, strerror(err), wait_ms);
    /* A refused connect leaves the socket unusable on some systems: start from a new one. */
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { logmsg("socket: %s", strerror(errno)); return 1; }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
  }
  arm_quickack(s);
  /* The guest side is an AF_UNIX socketpair; nothing to tune there. */
  logmsg("connected 127.0.0.1:%ld nodelay=%d quickack=%d", port, nodelay, quickack);

  static char buf[256 * 1024];
  int guest_open = 1, target_open = 1;
  unsigned long long up = 0, down = 0;
  while (guest_open || target_open) {
    struct pollfd p[2] = {{.fd = guest_open ? guest : -1, .events = POLLIN},
                          {.fd = target_open ? s : -1, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (guest_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = pump(guest, s, 0, buf, sizeof buf);
      if (n <= 0) {
        guest_open = 0;
        shutdown(s, SHUT_WR);
        if (n < 0) break;
      } else up += (unsigned long long)n;
    }
    if (target_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = pump(s, 1, 1, buf, sizeof buf);
      if (n <= 0) {
        /* Target closed (or was killed): close the guest connection completely. */
        target_open = 0;
        break;
      }
      down += (unsigned long long)n;
    }
  }
  logmsg("closed: %llu bytes to target, %llu bytes to guest", up, down);
  close(s);
  shutdown(guest, SHUT_RDWR);
  return 0;
}

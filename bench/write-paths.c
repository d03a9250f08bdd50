// What a QD1 4 KiB buffered write to a cached file costs by each path an event loop could use,
// completion seen through epoll on an eventfd: io_uring (a buffered write the file system cannot
// do without blocking goes to an io-wq kernel thread), a worker thread (pwrite, then an eventfd
// write: what libuv's pool does), and pwrite inline (what the hung-mount guarantee rules out).
//   apt-get install liburing-dev && cc -O2 -o /tmp/write-paths bench/write-paths.c -luring -lpthread
//   /tmp/write-paths /tmp/write-paths.bin   (docs/benchmarks.md, "What stands in the way")
#define _GNU_SOURCE
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int fd, efd_work, efd_done; static char buf[4096]; static long pos;
static void *worker(void *a) { (void)a; uint64_t v; for (;;) { if (read(efd_work, &v, 8) != 8) break; pwrite(fd, buf, 4096, pos); v = 1; write(efd_done, &v, 8); } return NULL; }
int main(int argc, char **argv) {
  int n = 20000; fd = open(argv[1], O_RDWR | O_CREAT, 0644); memset(buf, 1, sizeof buf);
  for (int i = 0; i < 1000; i++) pwrite(fd, buf, 4096, i * 4096L);
  int ep = epoll_create1(0); struct epoll_event ev = {.events = EPOLLIN}, out;
  // io_uring
  struct io_uring ring; io_uring_queue_init(8, &ring, 0); int efd = eventfd(0, 0); io_uring_register_eventfd(&ring, efd);
  ev.data.fd = efd; epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring); io_uring_prep_write(sqe, fd, buf, 4096, (i % 1000) * 4096L); io_uring_submit(&ring);
    epoll_wait(ep, &out, 1, -1); uint64_t v; read(efd, &v, 8);
    struct io_uring_cqe *cqe; io_uring_wait_cqe(&ring, &cqe); if (cqe->res != 4096) { printf("res %d\n", cqe->res); return 1; } io_uring_cqe_seen(&ring, cqe);
  }
  printf("io_uring: %.1f us per write\n", (now() - t0) / n);
  // thread
  efd_work = eventfd(0, 0); efd_done = eventfd(0, 0); pthread_t th; pthread_create(&th, NULL, worker, NULL);
  ev.data.fd = efd_done; epoll_ctl(ep, EPOLL_CTL_ADD, efd_done, &ev);
  t0 = now();
  for (int i = 0; i < n; i++) { pos = (i % 1000) * 4096L; uint64_t v = 1; write(efd_work, &v, 8); epoll_wait(ep, &out, 1, -1); read(efd_done, &v, 8); }
  printf("thread + eventfd: %.1f us per write\n", (now() - t0) / n);
  t0 = now(); for (int i = 0; i < n; i++) pwrite(fd, buf, 4096, (i % 1000) * 4096L);
  printf("pwrite inline: %.1f us per write\n", (now() - t0) / n);
  return 0;
}

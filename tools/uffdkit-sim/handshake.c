/* The Unix socket side: connect and send the handshake as Firecracker does
 * (persist.rs send_uffd_handshake, vmm_sys_util ScmSocket::send_with_fd). */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RAW_MAX (16u << 20)
#define MAX_FDS 253 /* SCM_MAX_FD */

static bool connect_retryable(int e) {
  return e == ENOENT || e == ECONNREFUSED;
}

/* How a send or receive ends when the handler has already closed: which
 * one the kernel reports depends on whether the close raced the send. */
static bool peer_gone(int e) {
  return e == EPIPE || e == ECONNRESET;
}

int conn_open(const struct sim_opts *o, int *out) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(o->socket) >= sizeof(sa.sun_path))
    return sim_err(SIM_SETUP, "--socket %s: path longer than %zu bytes",
                   o->socket, sizeof(sa.sun_path) - 1);
  strcpy(sa.sun_path, o->socket);
  uint64_t deadline = now_ns() + (uint64_t)(o->connect_timeout * 1e9);
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return sim_err(SIM_SETUP, "cannot create a Unix socket: %s",
                     strerror(errno));
    if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
      *out = fd;
      return 0;
    }
    int e = errno;
    close(fd);
    if (!connect_retryable(e) || now_ns() >= deadline)
      return sim_err(SIM_CONN, "cannot connect to %s: %s", o->socket,
                     strerror(e));
    sleep_s(0.01);
  }
}

static char *handshake_json(const struct sim_vm *vm, enum sim_style style,
                            size_t *len) {
  size_t cap = 16 + (size_t)vm->n_regions * 192;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  size_t n = 0;
  buf[n++] = '[';
  for (unsigned i = 0; i < vm->n_regions; i++) {
    const struct sim_region *r = &vm->region[i];
    n += (size_t)snprintf(buf + n, cap - n,
                          "%s{\"base_host_virt_addr\":%" PRIuPTR
                          ",\"size\":%" PRIu64 ",\"offset\":%" PRIu64,
                          i ? "," : "", (uintptr_t)r->base, r->size, r->offset);
    if (style == STYLE_1_12)
      n += (size_t)snprintf(buf + n, cap - n, ",\"page_size\":%" PRIu64,
                            vm->page_size);
    /* page_size_kib carries bytes in every Firecracker version. */
    if (style != STYLE_1_1)
      n += (size_t)snprintf(buf + n, cap - n, ",\"page_size_kib\":%" PRIu64,
                            vm->page_size);
    buf[n++] = '}';
  }
  buf[n++] = ']';
  buf[n] = 0;
  *len = n;
  return buf;
}

static char *read_raw(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    sim_err(SIM_SETUP, "cannot open --raw-handshake %s: %s", path,
            strerror(errno));
    return NULL;
  }
  char *buf = malloc(RAW_MAX);
  ssize_t n = 0, got = 0;
  while (buf && (size_t)got < RAW_MAX &&
         (n = read(fd, buf + got, RAW_MAX - (size_t)got)) > 0)
    got += n;
  close(fd);
  if (!buf || n < 0 || (size_t)got == RAW_MAX) {
    sim_err(SIM_SETUP, "cannot read --raw-handshake %s: %s", path,
            !buf    ? "out of memory"
            : n < 0 ? strerror(errno)
                    : "larger than 16 MiB");
    free(buf);
    return NULL;
  }
  *len = (size_t)got;
  return buf;
}

/* The fds ride on the first bytes only, exactly like send_with_fd; a stream
 * socket may take fewer bytes than asked, so the rest follows fd-less. */
static int send_chunk(int sock, const char *buf, size_t len, const int *fds,
                      unsigned nfds, bool refusal_expected) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  do {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
      memset(&ctl, 0, sizeof(ctl));
      mh.msg_control = ctl.buf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && refusal_expected && peer_gone(errno)) {
      fprintf(stderr,
              "uffdkit-sim: the daemon closed the connection during the "
              "handshake (%s), as expected\n",
              strerror(errno));
      return SIM_CLOSED;
    }
    if (n < 0)
      return sim_err(SIM_CONN, "sending the handshake failed: %s",
                     strerror(errno));
    buf += n;
    len -= (size_t)n;
    nfds = 0;
  } while (len);
  return 0;
}

static int open_fds(const struct sim_vm *vm, const struct sim_opts *o, int *fds,
                    unsigned *nfds) {
  *nfds = 0;
  if (!o->no_fd) fds[(*nfds)++] = vm->uffd;
  for (unsigned i = 0; i < o->extra_fds; i++) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return sim_err(SIM_SETUP, "--extra-fds: cannot open /dev/null: %s",
                     strerror(errno));
    fds[(*nfds)++] = fd;
  }
  return 0;
}

static void close_extra_fds(const struct sim_opts *o, const int *fds,
                            unsigned nfds) {
  for (unsigned i = o->no_fd ? 0 : 1; i < nfds; i++)
    close(fds[i]);
}

static int send_payload(int sock, const char *buf, size_t len,
                        const struct sim_opts *o, const int *fds,
                        unsigned nfds) {
  bool refusal = o->expect_refused;
  if (!o->split_send) return send_chunk(sock, buf, len, fds, nfds, refusal);
  if (o->split_send >= len)
    return sim_err(SIM_SETUP,
                   "--split-send %zu: the handshake has only %zu bytes",
                   o->split_send, len);
  int rc = send_chunk(sock, buf, o->split_send, fds, nfds, refusal);
  if (rc) return rc;
  /* Said, so a test can act while the handler holds half a handshake. */
  fprintf(stderr,
          "uffdkit-sim: sent %zu of %zu handshake bytes, the rest in "
          "%g s\n",
          o->split_send, len, o->split_pause);
  sleep_s(o->split_pause);
  return send_chunk(sock, buf + o->split_send, len - o->split_send, NULL, 0,
                    refusal);
}

int conn_send(int sock, const struct sim_vm *vm, const struct sim_opts *o) {
  size_t len = 0;
  char *buf = o->raw_handshake ? read_raw(o->raw_handshake, &len)
                               : handshake_json(vm, o->style, &len);
  if (!buf)
    return o->raw_handshake
               ? SIM_SETUP
               : sim_err(SIM_SETUP, "out of memory building the handshake");
  int fds[MAX_FDS];
  unsigned nfds;
  int rc = open_fds(vm, o, fds, &nfds);
  if (!rc) rc = send_payload(sock, buf, len, o, fds, nfds);
  close_extra_fds(o, fds, nfds);
  free(buf);
  return rc;
}

/* Returns 1 if the peer closed (an orderly close or a reset), 0 if still
 * open, and discards any bytes the peer sent (the protocol has none after
 * the handshake). */
static int drain_peer(int sock) {
  char junk[512];
  for (;;) {
    ssize_t n = recv(sock, junk, sizeof(junk), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

int conn_expect_refused(int sock, double timeout) {
  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(timeout * 1e9);
  for (;;) {
    uint64_t now = now_ns();
    if (now >= deadline)
      return sim_err(SIM_CONN,
                     "--expect-refused: the daemon still holds the "
                     "connection open after %.1f s",
                     timeout);
    struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};
    int ms = (int)((deadline - now) / 1000000) + 1;
    if (poll(&p, 1, ms) > 0 && drain_peer(sock)) {
      fprintf(stderr,
              "uffdkit-sim: the daemon closed the connection after "
              "%.3f s, as expected\n",
              (double)(now_ns() - start) / 1e9);
      return SIM_OK;
    }
  }
}

bool conn_peer_closed(int sock) {
  struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};
  return poll(&p, 1, 0) > 0 && drain_peer(sock);
}

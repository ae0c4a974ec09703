/* ref-handler: a minimal single-threaded Firecracker UFFD page server, the
 * baseline the benchmarks compare against.
 *
 * usage: ref-handler [--busy] SOCKET MEMFILE
 *
 * One UFFDIO_COPY of one page per fault, straight from a read-only mmap of
 * the memory file; removed (ballooned) pages are answered with zeros.
 * --busy: while any VM is connected, poll without sleeping (the minimal
 * busy-polling handler: no wake-up per fault, one CPU per process). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HANDSHAKE_MAX (64 * 1024)
#define MAX_RX_FDS 16
#define UFFD_MSG_BATCH 64
#define HUGE_PAGE (2UL << 20)

struct region {
  uint64_t base, size, offset;
};

struct range {
  uint64_t start, end;
};

struct session {
  int conn; /* -1 once the peer closed it (pre-1.12 closes at once) */
  int uffd;
  bool conn_hup_ends; /* 1.12+ keeps the socket open for its lifetime */
  uint64_t page_size;
  struct region *regions;
  int n_regions;
  struct range *removed;
  size_t n_removed, cap_removed;
  uint64_t *pending; /* fault addresses still to serve */
  size_t n_pending, cap_pending;
};

static volatile sig_atomic_t stop;
static bool busy;
static const uint8_t *mem;
static size_t mem_len;
static uint8_t *zero_huge; /* 2 MiB of zeros, made on first use */
static uint64_t n_faults, n_zero;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void session_free(struct session *s) {
  if (s->conn >= 0) close(s->conn);
  if (s->uffd >= 0) close(s->uffd);
  free(s->regions);
  free(s->removed);
  free(s->pending);
  free(s);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need)
    ncap *= 2;
  void *p = realloc(*arr, ncap * elem);
  if (!p) return -1;
  *arr = p;
  *cap = ncap;
  return 0;
}

/* ---- handshake ---- */

static bool json_u64(const cJSON *obj, const char *key, uint64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsNumber(v) || v->valuedouble < 0) return false;
  *out = (uint64_t)v->valuedouble;
  return true;
}

static int parse_region(const cJSON *o, struct session *s, int i) {
  struct region *r = &s->regions[i];
  uint64_t ps;
  if (!json_u64(o, "base_host_virt_addr", &r->base) ||
      !json_u64(o, "size", &r->size) || !json_u64(o, "offset", &r->offset)) {
    fprintf(stderr,
            "ref-handler: handshake region %d lacks "
            "base_host_virt_addr, size or offset\n",
            i);
    return -1;
  }
  if (json_u64(o, "page_size", &ps))
    s->conn_hup_ends = true;
  else if (!json_u64(o, "page_size_kib", &ps)) /* bytes, despite the name */
    ps = 4096;
  s->page_size = ps;
  if (r->offset > mem_len || r->size > mem_len - r->offset) {
    fprintf(stderr,
            "ref-handler: handshake region %d (offset %" PRIu64
            ", size %" PRIu64 ") ends past the %zu-byte memory file\n",
            i, r->offset, r->size, mem_len);
    return -1;
  }
  return 0;
}

static int parse_handshake(const cJSON *arr, struct session *s) {
  int n = cJSON_GetArraySize(arr);
  if (!cJSON_IsArray(arr) || n < 1) {
    fprintf(stderr, "ref-handler: handshake is not a non-empty JSON array\n");
    return -1;
  }
  s->regions = calloc((size_t)n, sizeof(*s->regions));
  if (!s->regions) return -1;
  s->n_regions = n;
  for (int i = 0; i < n; i++)
    if (parse_region(cJSON_GetArrayItem(arr, i), s, i)) return -1;
  if (s->page_size & (s->page_size - 1)) {
    fprintf(stderr,
            "ref-handler: page size %" PRIu64 " is not a power of two\n",
            s->page_size);
    return -1;
  }
  return 0;
}

/* Keeps the first fd passed (the uffd) and closes any others. */
static void take_fds(struct msghdr *mh, int *uffd) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int fds[MAX_RX_FDS];
    memcpy(fds, CMSG_DATA(c), (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
      if (*uffd < 0)
        *uffd = fds[i];
      else
        close(fds[i]);
    }
  }
}

static ssize_t recv_part(int conn, char *buf, size_t len, int *uffd) {
  union {
    char b[CMSG_SPACE(sizeof(int) * MAX_RX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = ctl.b,
                      .msg_controllen = sizeof(ctl.b)};
  ssize_t n;
  do
    n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n >= 0) take_fds(&mh, uffd);
  return n;
}

/* Reads until the bytes form a complete JSON value: nothing promises the
 * array arrives in a single recvmsg. */
static cJSON *recv_handshake(int conn, int *uffd) {
  char *buf = malloc(HANDSHAKE_MAX + 1);
  size_t got = 0;
  cJSON *json = NULL;
  while (buf && !json && got < HANDSHAKE_MAX) {
    ssize_t n = recv_part(conn, buf + got, HANDSHAKE_MAX - got, uffd);
    if (n <= 0) {
      fprintf(stderr, "ref-handler: handshake: %s after %zu bytes\n",
              n < 0 ? strerror(errno) : "connection closed", got);
      break;
    }
    got += (size_t)n;
    buf[got] = 0;
    json = cJSON_ParseWithLength(buf, got);
  }
  free(buf);
  return json;
}

static struct session *accept_session(int lsock) {
  int conn = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) {
    fprintf(stderr, "ref-handler: accept: %s\n", strerror(errno));
    return NULL;
  }
  struct timeval tv = {.tv_sec = 5};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct session *s = calloc(1, sizeof(*s));
  if (!s) {
    close(conn);
    return NULL;
  }
  s->conn = conn;
  s->uffd = -1;
  cJSON *json = recv_handshake(conn, &s->uffd);
  int rc = json ? parse_handshake(json, s) : -1;
  cJSON_Delete(json);
  if (!rc && s->uffd < 0) {
    fprintf(stderr, "ref-handler: handshake carried no file descriptor\n");
    rc = -1;
  }
  if (rc) {
    session_free(s);
    return NULL;
  }
  return s;
}

/* ---- faults ---- */

static bool is_removed(const struct session *s, uint64_t page) {
  for (size_t i = 0; i < s->n_removed; i++)
    if (page >= s->removed[i].start && page < s->removed[i].end) return true;
  return false;
}

static const struct region *find_region(const struct session *s,
                                        uint64_t addr) {
  for (int i = 0; i < s->n_regions; i++)
    if (addr >= s->regions[i].base &&
        addr - s->regions[i].base < s->regions[i].size)
      return &s->regions[i];
  return NULL;
}

static int do_copy(int uffd, uint64_t dst, const void *src, uint64_t len) {
  struct uffdio_copy c = {.dst = dst, .src = (uintptr_t)src, .len = len};
  return ioctl(uffd, UFFDIO_COPY, &c) ? errno : 0;
}

static int do_zero(const struct session *s, uint64_t page) {
  if (s->page_size != HUGE_PAGE) {
    struct uffdio_zeropage z = {.range = {.start = page, .len = s->page_size}};
    return ioctl(s->uffd, UFFDIO_ZEROPAGE, &z) ? errno : 0;
  }
  /* hugetlb has no UFFDIO_ZEROPAGE. */
  if (!zero_huge) {
    void *p =
        mmap(NULL, HUGE_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return ENOMEM;
    zero_huge = p;
  }
  return do_copy(s->uffd, page, zero_huge, HUGE_PAGE);
}

static void wake(const struct session *s, uint64_t page) {
  struct uffdio_range r = {.start = page, .len = s->page_size};
  ioctl(s->uffd, UFFDIO_WAKE, &r);
}

/* Returns 0 when served, EAGAIN to retry later, ESRCH when the VM is gone. */
static int serve_fault(const struct session *s, uint64_t addr) {
  uint64_t page = addr & ~(s->page_size - 1);
  const struct region *r = find_region(s, page);
  if (!r) {
    fprintf(stderr,
            "ref-handler: fault at 0x%" PRIx64 " is outside every region\n",
            addr);
    return 0;
  }
  int e;
  if (is_removed(s, page)) {
    e = do_zero(s, page);
    n_zero += !e;
  } else {
    e = do_copy(s->uffd, page, mem + r->offset + (page - r->base),
                s->page_size);
  }
  n_faults += !e;
  if (e == EEXIST)
    wake(s, page);
  else if (e && e != EAGAIN && e != ESRCH)
    fprintf(stderr, "ref-handler: serving 0x%" PRIx64 ": %s\n", page,
            strerror(e));
  return e == EAGAIN || e == ESRCH ? e : 0;
}

static int add_removed(struct session *s, uint64_t start, uint64_t end) {
  if (grow((void **)&s->removed, &s->cap_removed, s->n_removed + 1,
           sizeof(*s->removed)))
    return -1;
  s->removed[s->n_removed++] = (struct range){start, end};
  return 0;
}

static int add_pending(struct session *s, uint64_t addr) {
  if (grow((void **)&s->pending, &s->cap_pending, s->n_pending + 1,
           sizeof(*s->pending)))
    return -1;
  s->pending[s->n_pending++] = addr;
  return 0;
}

static int take_msg(struct session *s, const struct uffd_msg *m) {
  if (m->event == UFFD_EVENT_REMOVE)
    return add_removed(s, m->arg.remove.start, m->arg.remove.end);
  if (m->event == UFFD_EVENT_PAGEFAULT)
    return add_pending(s, m->arg.pagefault.address);
  fprintf(stderr, "ref-handler: ignoring uffd event 0x%x\n", m->event);
  return 0;
}

/* Reads every pending message; REMOVEs are applied before any fault is
 * served, since copies fail with EAGAIN while a REMOVE is unread. */
static int drain(struct session *s) {
  struct uffd_msg msgs[UFFD_MSG_BATCH];
  for (;;) {
    ssize_t n = read(s->uffd, msgs, sizeof(msgs));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
      if (take_msg(s, &msgs[i])) return -1;
  }
}

static int serve_pending(struct session *s) {
  size_t keep = 0;
  for (size_t i = 0; i < s->n_pending; i++) {
    int e = serve_fault(s, s->pending[i]);
    if (e == ESRCH) return -1;
    if (e == EAGAIN) s->pending[keep++] = s->pending[i];
  }
  s->n_pending = keep;
  return 0;
}

/* Returns -1 when the session is over. */
static int on_uffd(struct session *s) {
  do {
    if (drain(s) || serve_pending(s)) return -1;
  } while (s->n_pending);
  return 0;
}

/* ---- main loop ---- */

static int on_conn(struct session *s) {
  char b[256];
  ssize_t n = recv(s->conn, b, sizeof(b), MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return 0;
  close(s->conn);
  s->conn = -1;
  return s->conn_hup_ends ? -1 : 0;
}

static int listen_on(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "ref-handler: socket path %s is too long\n", path);
    return -1;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
      listen(fd, 64)) {
    fprintf(stderr, "ref-handler: cannot listen on %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  return fd;
}

static int map_memfile(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    fprintf(stderr, "ref-handler: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  mem_len = (size_t)st.st_size;
  void *p =
      mem_len ? mmap(NULL, mem_len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  close(fd);
  if (p == MAP_FAILED) {
    fprintf(stderr, "ref-handler: cannot mmap %s: %s\n", path,
            mem_len ? strerror(errno) : "empty file");
    return -1;
  }
  mem = p;
  return 0;
}

struct server {
  int lsock;
  struct session **s;
  size_t n, cap;
  struct pollfd *pfd;
};

static void add_session(struct server *sv) {
  struct session *s = accept_session(sv->lsock);
  if (!s) return;
  if (grow((void **)&sv->s, &sv->cap, sv->n + 1, sizeof(*sv->s))) {
    session_free(s);
    return;
  }
  sv->s[sv->n++] = s;
}

static void end_session(struct server *sv, size_t i) {
  session_free(sv->s[i]);
  sv->s[i] = sv->s[--sv->n];
}

/* pfd layout: [listener, uffd0, conn0, uffd1, conn1, ...] */
static int build_pollset(struct server *sv) {
  struct pollfd *p = realloc(sv->pfd, (1 + 2 * sv->n) * sizeof(*p));
  if (!p) return -1;
  sv->pfd = p;
  p[0] = (struct pollfd){.fd = sv->lsock, .events = POLLIN};
  for (size_t i = 0; i < sv->n; i++) {
    p[1 + 2 * i] = (struct pollfd){.fd = sv->s[i]->uffd, .events = POLLIN};
    p[2 + 2 * i] = (struct pollfd){.fd = sv->s[i]->conn, .events = POLLIN};
  }
  return 0;
}

static void dispatch(struct server *sv) {
  for (size_t i = sv->n; i-- > 0;) {
    struct session *s = sv->s[i];
    short ue = sv->pfd[1 + 2 * i].revents, ce = sv->pfd[2 + 2 * i].revents;
    bool end = (ue & (POLLHUP | POLLERR)) || ((ue & POLLIN) && on_uffd(s));
    if (!end && s->conn >= 0 && ce) end = on_conn(s);
    if (end) end_session(sv, i);
  }
  if (sv->pfd[0].revents & POLLIN) add_session(sv);
}

static int serve(struct server *sv) {
  while (!stop) {
    if (build_pollset(sv)) return -1;
    int n = poll(sv->pfd, 1 + 2 * sv->n, busy && sv->n ? 0 : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "ref-handler: poll: %s\n", strerror(errno));
      return -1;
    }
    dispatch(sv);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--busy")) {
    busy = true;
    argv++;
    argc--;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: ref-handler [--busy] SOCKET MEMFILE\n");
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (map_memfile(argv[2])) return 1;
  struct server sv = {.lsock = listen_on(argv[1])};
  if (sv.lsock < 0) return 1;
  int rc = serve(&sv);
  while (sv.n)
    end_session(&sv, sv.n - 1);
  free(sv.s);
  free(sv.pfd);
  close(sv.lsock);
  unlink(argv[1]);
  fprintf(stderr,
          "ref-handler: served %" PRIu64 " faults (%" PRIu64 " with zeros)\n",
          n_faults, n_zero);
  return rc ? 1 : 0;
}

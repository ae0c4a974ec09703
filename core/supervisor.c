#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handshake.h"
#include "ipc.h"
#include "log.h"
#include "shm.h"

#define MAX_FDS_IN_HANDSHAKE 16

enum kind { K_LISTENER, K_PENDING, K_WORKER, K_SIGNAL };

struct sv_listener {
  enum kind kind;
  const struct listener_conf *conf;
  int fd;
  int stats_fd;
  struct listener_stats *stats;
  int pending;
  int live;
};

struct pending {
  enum kind kind;
  struct sv_listener *l;
  int conn, uffd, pidfd;
  struct ucred cred;
  uint64_t deadline;
  char *buf;
  size_t len;
  struct pending *next;
};

struct sv_session {
  uint64_t id;
  struct sv_listener *l;
  int fds[4]; /* conn, uffd, pidfd, shm */
  struct session_shm *shm;
  size_t shm_len;
  struct sv_session *next;
};

struct sv {
  struct daemon_conf *conf;
  const struct supervisor_opts *opts;
  int ep;
  int sigfd;
  enum kind sig_kind, worker_kind;
  struct sv_listener *ls;
  int nl;
  struct pending *pending;
  struct sv_session *sessions;
  uint64_t next_id;
  int config_fd;
  char exe[PATH_MAX];
  pid_t worker;
  int ipc;
  int ready;
  int ever_ready;
  uint64_t worker_started;
  uint64_t restart_at; /* 0: no restart scheduled */
  uint64_t restart_delay;
  int stopping;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void ep_add(struct sv *v, int fd, uint32_t ev, void *ptr) {
  struct epoll_event e = {.events = ev, .data.ptr = ptr};
  if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &e) < 0)
    log_error("epoll_ctl(%d): %s", fd, strerror(errno));
}

static void close_if(int fd) {
  if (fd >= 0)
    close(fd);
}

/* ---- listening sockets ---- */

/* A socket file left by an earlier run is replaced only if nothing listens
 * on it; anything that is not a socket is never removed. */
static int clear_stale(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : -1;
  if (!S_ISSOCK(st.st_mode)) {
    log_error("%s exists and is not a socket; not touching it", path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  if (r == 0) {
    log_error("%s: another process is listening on it", path);
    return -1;
  }
  if (e != ECONNREFUSED) {
    log_error("%s: cannot tell whether it is in use: %s", path, strerror(e));
    return -1;
  }
  log_info("%s: replacing a stale socket", path);
  return unlink(path);
}

static int resolve_owner(const struct listener_conf *c, uid_t *uid,
                         gid_t *gid) {
  *uid = (uid_t)-1;
  *gid = (gid_t)-1;
  if (c->socket_owner) {
    struct passwd *pw = getpwnam(c->socket_owner);
    if (!pw) {
      log_error("listener %s: socket_owner '%s' is not a user", c->name,
                c->socket_owner);
      return -1;
    }
    *uid = pw->pw_uid;
  }
  if (c->socket_group) {
    struct group *gr = getgrnam(c->socket_group);
    if (!gr) {
      log_error("listener %s: socket_group '%s' is not a group", c->name,
                c->socket_group);
      return -1;
    }
    *gid = gr->gr_gid;
  }
  return 0;
}

static int open_listener(struct sv_listener *l) {
  const struct listener_conf *c = l->conf;
  uid_t uid;
  gid_t gid;
  if (resolve_owner(c, &uid, &gid) < 0 || clear_stale(c->socket) < 0)
    return -1;
  l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", c->socket);
  /* Created with its final mode: never briefly open to others. */
  mode_t old = umask(0777 & ~c->socket_mode);
  int r = bind(l->fd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  if (r < 0 || chmod(c->socket, c->socket_mode) < 0 ||
      ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
       chown(c->socket, uid, gid) < 0) ||
      listen(l->fd, 128) < 0) {
    log_error("listener %s: %s: %s", c->name, c->socket, strerror(errno));
    close(l->fd);
    l->fd = -1; /* not ours: never unlinked */
    return -1;
  }
  log_info("listener %s on %s (mode %04o)", c->name, c->socket,
           c->socket_mode);
  return 0;
}

/* ---- the worker ---- */

static void send_session(struct sv *v, struct sv_session *s) {
  struct ipc_msg m = {.type = IPC_SESSION, .id = s->id};
  snprintf(m.name, sizeof m.name, "%s", s->l->conf->name);
  if (ipc_send(v->ipc, &m, s->fds, 4) < 0)
    log_warn("session %llu: could not hand to the worker: %s",
             (unsigned long long)s->id, strerror(errno));
}

static void spawn_worker(struct sv *v) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
    log_error("socketpair: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int ipc = dup(sp[1]), cfd = dup(v->config_fd); /* without CLOEXEC */
    char a_ipc[16], a_cfd[16];
    snprintf(a_ipc, sizeof a_ipc, "%d", ipc);
    snprintf(a_cfd, sizeof a_cfd, "%d", cfd);
    char *argv[16] = {"uffdkit", "--worker", "--ipc-fd", a_ipc, "--config-fd",
                      a_cfd, "--config-name", v->conf->file};
    int n = 8;
    if (v->opts->log_level) {
      argv[n++] = "--log-level";
      argv[n++] = (char *)v->opts->log_level;
    }
    if (v->opts->log_format) {
      argv[n++] = "--log-format";
      argv[n++] = (char *)v->opts->log_format;
    }
    argv[n] = NULL;
    execv(v->exe, argv);
    log_error("exec %s: %s", v->exe, strerror(errno));
    _exit(127);
  }
  close(sp[1]);
  if (pid < 0) {
    log_error("fork: %s", strerror(errno));
    close(sp[0]);
    return;
  }
  v->worker = pid;
  v->ipc = sp[0];
  v->ready = 0;
  v->worker_started = now_ns();
  fcntl(v->ipc, F_SETFL, O_NONBLOCK);
  ep_add(v, v->ipc, EPOLLIN, &v->worker_kind);
  for (int i = 0; i < v->nl; i++) {
    struct ipc_msg m = {.type = IPC_LISTENER};
    snprintf(m.name, sizeof m.name, "%s", v->ls[i].conf->name);
    ipc_send(v->ipc, &m, &v->ls[i].stats_fd, 1);
  }
}

static void worker_ready(struct sv *v) {
  v->ready = 1;
  int n = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next, n++)
    send_session(v, s);
  if (v->ever_ready)
    log_info("worker %d ready; handed back %d live sessions", v->worker, n);
  else
    log_info("worker %d ready", v->worker);
  v->ever_ready = 1;
}

/* ---- sessions ---- */

static void add_counters(struct session_counters *to,
                         const struct session_counters *from) {
  const uint64_t *f = (const uint64_t *)from;
  uint64_t *t = (uint64_t *)to;
  for (size_t i = 0; i < sizeof *from / sizeof(uint64_t); i++)
    __atomic_fetch_add(&t[i], __atomic_load_n(&f[i], __ATOMIC_RELAXED),
                       __ATOMIC_RELAXED);
}

static void end_session(struct sv *v, uint64_t id, int reason) {
  for (struct sv_session **pp = &v->sessions; *pp; pp = &(*pp)->next) {
    struct sv_session *s = *pp;
    if (s->id != id)
      continue;
    *pp = s->next;
    add_counters(&s->l->stats->ended, &s->shm->counters);
    __atomic_fetch_sub(&s->l->stats->sessions_live, 1, __ATOMIC_RELAXED);
    s->l->live--;
    if (reason == END_REFUSED)
      log_warn("session %llu (pid %d) on %s was refused by its source",
               (unsigned long long)id, s->shm->pid, s->l->conf->name);
    munmap(s->shm, s->shm_len);
    for (int i = 0; i < 4; i++)
      close_if(s->fds[i]);
    free(s);
    return;
  }
}

static int fill_shm(struct sv *v, struct pending *p, const struct handshake *h,
                    struct session_shm **out, size_t *len) {
  uint64_t npages = 0;
  for (uint32_t i = 0; i < h->nregions; i++)
    npages += h->regions[i].size / h->page_size;
  int fd = session_shm_create(npages, out, len);
  if (fd < 0)
    return -1;
  struct session_shm *m = *out;
  m->id = ++v->next_id;
  snprintf(m->listener, sizeof m->listener, "%s", p->l->conf->name);
  m->pid = p->cred.pid;
  m->uid = p->cred.uid;
  m->page_size = h->page_size;
  m->nregions = h->nregions;
  m->keeps_socket = (uint32_t)h->keeps_socket;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m->started_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  uint64_t first = 0;
  for (uint32_t i = 0; i < h->nregions; i++) {
    m->regions[i] = (struct shm_region){.base = h->regions[i].base,
                                        .size = h->regions[i].size,
                                        .offset = h->regions[i].offset,
                                        .first_page = first};
    first += h->regions[i].size / h->page_size;
  }
  return fd;
}

static void free_pending(struct sv *v, struct pending *p, int close_conn) {
  for (struct pending **pp = &v->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  p->l->pending--;
  if (close_conn)
    close_if(p->conn);
  else
    epoll_ctl(v->ep, EPOLL_CTL_DEL, p->conn, NULL);
  free(p->buf);
  free(p);
}

static void reject(struct sv *v, struct pending *p, const char *why) {
  log_warn("listener %s: closing connection from pid %d uid %d: %s",
           p->l->conf->name, p->cred.pid, p->cred.uid, why);
  __atomic_fetch_add(&p->l->stats->handshake_errors, 1, __ATOMIC_RELAXED);
  close_if(p->uffd);
  close_if(p->pidfd);
  free_pending(v, p, 1);
}

static void start_session(struct sv *v, struct pending *p,
                          const struct handshake *h) {
  struct sv_session *s = calloc(1, sizeof *s);
  int shmfd = fill_shm(v, p, h, &s->shm, &s->shm_len);
  if (shmfd < 0) {
    free(s);
    reject(v, p, "cannot allocate session state");
    return;
  }
  s->id = s->shm->id;
  s->l = p->l;
  s->fds[0] = p->conn;
  s->fds[1] = p->uffd;
  s->fds[2] = p->pidfd;
  s->fds[3] = shmfd;
  s->next = v->sessions;
  v->sessions = s;
  s->l->live++;
  __atomic_fetch_add(&s->l->stats->sessions_live, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&s->l->stats->sessions_total, 1, __ATOMIC_RELAXED);
  log_info("session %llu: pid %d uid %d on %s, %u regions, page size %u%s",
           (unsigned long long)s->id, p->cred.pid, p->cred.uid,
           s->l->conf->name, h->nregions, h->page_size,
           h->consumed < p->len ? " (extra bytes after the handshake kept)"
                                : "");
  free_pending(v, p, 0);
  if (v->ready)
    send_session(v, s);
}

static int is_uffd(int fd) {
  char path[64], target[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0)
    return 0;
  target[n] = 0;
  return !strcmp(target, "anon_inode:[userfaultfd]");
}

/* Keeps the first descriptor received, closes every other. */
static void take_fds(struct pending *p, struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (p->uffd < 0)
        p->uffd = fd;
      else
        close(fd);
    }
  }
}

static void on_pending(struct sv *v, struct pending *p) {
  size_t max = p->l->conf->max_handshake_bytes;
  for (;;) {
    union {
      char b[CMSG_SPACE(sizeof(int) * MAX_FDS_IN_HANDSHAKE)];
      struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = p->buf + p->len, .iov_len = max - p->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cm.b,
                        .msg_controllen = sizeof cm.b};
    ssize_t r = recvmsg(p->conn, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (r > 0 || mh.msg_controllen)
      take_fds(p, &mh);
    if (r < 0) {
      char why[128];
      snprintf(why, sizeof why, "receive failed: %s", strerror(errno));
      reject(v, p, why);
      return;
    }
    p->len += (size_t)r;
    struct handshake h;
    char err[512];
    int st = handshake_parse(p->buf, p->len, (uint32_t)p->l->conf->max_regions,
                             &h, err, sizeof err);
    if (st == HS_INVALID) {
      reject(v, p, err);
    } else if (st == HS_COMPLETE) {
      if (p->uffd < 0)
        reject(v, p, "handshake came without a file descriptor");
      else if (!is_uffd(p->uffd))
        reject(v, p, "the descriptor sent is not a userfaultfd");
      else
        start_session(v, p, &h);
    } else if (r == 0) {
      snprintf(err, sizeof err,
               "connection closed after %zu bytes, before the handshake "
               "was complete",
               p->len);
      reject(v, p, err);
    } else if (p->len == max) {
      snprintf(err, sizeof err,
               "handshake longer than max_handshake_bytes (%zu)", max);
      reject(v, p, err);
    } else {
      continue;
    }
    return;
  }
}

static int allowed(const struct listener_conf *c, const struct ucred *cr) {
  int uid_ok = !c->n_allow_uids, gid_ok = !c->n_allow_gids;
  for (int i = 0; i < c->n_allow_uids; i++)
    uid_ok |= c->allow_uids[i] == cr->uid;
  for (int i = 0; i < c->n_allow_gids; i++)
    gid_ok |= c->allow_gids[i] == cr->gid;
  return uid_ok && gid_ok;
}

static void on_accept(struct sv *v, struct sv_listener *l) {
  for (;;) {
    int conn = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno != EAGAIN && errno != EINTR)
        log_warn("listener %s: accept: %s", l->conf->name, strerror(errno));
      return;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    const char *why = !allowed(l->conf, &cr) ? "not in allow_uids/allow_gids"
                      : l->live + l->pending >= l->conf->max_sessions
                          ? "max_sessions reached"
                          : NULL;
    if (why) {
      log_warn("listener %s: refused pid %d uid %d gid %d: %s", l->conf->name,
               cr.pid, cr.uid, cr.gid, why);
      __atomic_fetch_add(&l->stats->refused_peers, 1, __ATOMIC_RELAXED);
      close(conn);
      continue;
    }
    struct pending *p = calloc(1, sizeof *p);
    p->kind = K_PENDING;
    p->l = l;
    p->conn = conn;
    p->uffd = -1;
    p->cred = cr;
    p->pidfd = cr.pid > 0 ? (int)syscall(SYS_pidfd_open, cr.pid, 0) : -1;
    p->deadline = now_ns() + l->conf->handshake_timeout_ns;
    p->buf = malloc(l->conf->max_handshake_bytes);
    p->next = v->pending;
    v->pending = p;
    l->pending++;
    ep_add(v, conn, EPOLLIN | EPOLLRDHUP, p);
    on_pending(v, p);
  }
}

static void expire_pending(struct sv *v) {
  uint64_t t = now_ns();
  for (struct pending *p = v->pending, *n; p; p = n) {
    n = p->next;
    if (t >= p->deadline)
      reject(v, p, "no complete handshake before handshake_timeout");
  }
}

/* ---- the worker's messages and death ---- */

static void on_worker_msg(struct sv *v) {
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  for (;;) {
    int r = ipc_recv(v->ipc, &m, fds);
    if (r <= 0)
      return;
    for (int i = 0; i < IPC_MAX_FDS; i++)
      close_if(fds[i]);
    if (m.type == IPC_READY)
      worker_ready(v);
    else if (m.type == IPC_END)
      end_session(v, m.id, m.code);
  }
}

static int on_child(struct sv *v) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid != v->worker)
      continue;
    on_worker_msg(v); /* what it said before dying still counts */
    epoll_ctl(v->ep, EPOLL_CTL_DEL, v->ipc, NULL);
    close(v->ipc);
    v->ipc = -1;
    v->worker = 0;
    if (v->stopping)
      return 0;
    if (!v->ever_ready) {
      log_error("worker failed to start (%s %d)",
                WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      return -1;
    }
    /* Quick deaths back off, up to 5 s; a worker that lived 10 s resets. */
    uint64_t lived = now_ns() - v->worker_started;
    v->restart_delay = lived > 10000000000ull || !v->restart_delay
                           ? v->conf->worker_restart_delay_ns
                           : v->restart_delay * 2;
    if (v->restart_delay > 5000000000ull)
      v->restart_delay = 5000000000ull;
    v->restart_at = now_ns() + v->restart_delay;
    for (int i = 0; i < v->nl; i++)
      __atomic_fetch_add(&v->ls[i].stats->worker_restarts, 1,
                         __ATOMIC_RELAXED);
    log_error("worker died (%s %d); restarting it in %llu ms, sessions kept",
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
              (unsigned long long)(v->restart_delay / 1000000));
  }
  return 0;
}

/* ---- main loop ---- */

static int next_timeout_ms(struct sv *v) {
  uint64_t t = now_ns(), next = UINT64_MAX;
  for (struct pending *p = v->pending; p; p = p->next)
    if (p->deadline < next)
      next = p->deadline;
  if (v->restart_at && v->restart_at < next)
    next = v->restart_at;
  if (next == UINT64_MAX)
    return -1;
  return next <= t ? 0 : (int)((next - t) / 1000000 + 1);
}

static int on_signal(struct sv *v) {
  struct signalfd_siginfo si;
  while (read(v->sigfd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGCHLD) {
      if (on_child(v) < 0)
        return -1;
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      log_info("stopping (signal %u)", si.ssi_signo);
      v->stopping = 1;
    }
  }
  return 0;
}

static int run_loop(struct sv *v) {
  struct epoll_event ev[32];
  while (!v->stopping) {
    int n = epoll_wait(v->ep, ev, 32, next_timeout_ms(v));
    if (n < 0 && errno != EINTR)
      return -1;
    for (int i = 0; i < n; i++) {
      enum kind *k = ev[i].data.ptr;
      if (*k == K_SIGNAL && on_signal(v) < 0)
        return -1;
      else if (*k == K_LISTENER)
        on_accept(v, (struct sv_listener *)k);
      else if (*k == K_PENDING)
        on_pending(v, (struct pending *)k);
      else if (*k == K_WORKER && v->ipc >= 0)
        on_worker_msg(v);
    }
    expire_pending(v);
    if (v->restart_at && now_ns() >= v->restart_at && !v->stopping) {
      v->restart_at = 0;
      spawn_worker(v);
    }
  }
  return 0;
}

static void stop_worker(struct sv *v) {
  if (!v->worker)
    return;
  kill(v->worker, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(v->worker, NULL, WNOHANG) == v->worker)
      return;
    usleep(50000);
  }
  log_warn("worker %d did not stop in 5 s; killing it", v->worker);
  kill(v->worker, SIGKILL);
  waitpid(v->worker, NULL, 0);
}

static void shutdown_all(struct sv *v) {
  int live = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    live++;
  if (live)
    log_warn("stopping with %d live sessions: their VMs can no longer fault "
             "in memory",
             live);
  for (int i = 0; i < v->nl; i++)
    if (v->ls[i].fd >= 0) {
      close(v->ls[i].fd);
      unlink(v->ls[i].conf->socket);
    }
  stop_worker(v);
  while (v->sessions)
    end_session(v, v->sessions->id, END_SHUTDOWN);
  while (v->pending) {
    close_if(v->pending->uffd);
    close_if(v->pending->pidfd);
    free_pending(v, v->pending, 1);
  }
}

static int setup(struct sv *v) {
  ssize_t n = readlink("/proc/self/exe", v->exe, sizeof v->exe - 1);
  if (n < 0)
    return -1;
  v->exe[n] = 0;
  v->ep = epoll_create1(EPOLL_CLOEXEC);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  v->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  v->sig_kind = K_SIGNAL;
  v->worker_kind = K_WORKER;
  ep_add(v, v->sigfd, EPOLLIN, &v->sig_kind);
  v->config_fd = memfd_create("uffdkit-config", MFD_CLOEXEC);
  size_t len = strlen(v->conf->text);
  if (write(v->config_fd, v->conf->text, len) != (ssize_t)len)
    return -1;
  v->nl = v->conf->n_listeners;
  v->ls = calloc((size_t)v->nl, sizeof *v->ls);
  for (int i = 0; i < v->nl; i++) {
    struct sv_listener *l = &v->ls[i];
    l->kind = K_LISTENER;
    l->conf = &v->conf->listeners[i];
    l->fd = -1;
    l->stats_fd = listener_stats_create(&l->stats);
    if (l->stats_fd < 0 || open_listener(l) < 0)
      return -1;
    ep_add(v, l->fd, EPOLLIN, l);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  v->next_id = (uint64_t)ts.tv_sec << 20; /* ids stay unique across runs */
  return 0;
}

int supervisor_run(struct daemon_conf *conf, const struct supervisor_opts *o) {
  struct sv v = {.conf = conf, .opts = o, .ipc = -1};
  int rc = 1;
  if (setup(&v) == 0) {
    spawn_worker(&v);
    rc = v.worker && run_loop(&v) == 0 ? 0 : 1;
  }
  v.stopping = 1;
  shutdown_all(&v);
  for (int i = 0; i < v.nl; i++)
    if (v.ls[i].stats)
      munmap(v.ls[i].stats, sizeof *v.ls[i].stats);
  free(v.ls);
  close_if(v.config_fd);
  conf_free(conf);
  return rc;
}

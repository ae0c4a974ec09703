#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "control.h"
#include "handover.h"
#include "handshake.h"
#include "intake.h"
#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "selfexe.h"
#include "shm.h"
#include "sockfile.h"
#include "sv.h"

#define MAX_FDS_IN_HANDSHAKE 16

void ep_add(struct sv *v, int fd, uint32_t ev, void *ptr) {
  struct epoll_event e = {.events = ev, .data.ptr = ptr};
  if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &e) < 0)
    log_error("epoll_ctl(%d): %s", fd, strerror(errno));
}

void close_if(int fd) {
  if (fd >= 0) close(fd);
}

/* ---- listening sockets ---- */

/* Mode and owner of the socket file l->fd is bound to, as c says: on that
 * node only, never through a path someone may have swapped. */
int apply_access(const struct sv_listener *l, const struct listener_conf *c,
                 char *err, size_t errlen) {
  char why[PATH_MAX + 128];
  if (sockfile_apply(l->fd, c, why, sizeof why) == 0) return 0;
  snprintf(err, errlen, "listener %s: %s", c->name, why);
  return -1;
}

void ep_del(struct sv *v, int fd) {
  epoll_ctl(v->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* The name a descriptor is stored and handed over under. */
const char *fdname(char kind, const char *what, char *buf, size_t len) {
  snprintf(buf, len, "%c-%s", kind, what);
  return buf;
}

/* Puts a descriptor in systemd's fd store (a no-op outside systemd); a
 * refusal means it would not survive a service restart: say so. */
void store_fd(const int *fd, int n, const char *name) {
  if (notify_fdstore(fd, n, name) < 0)
    log_warn("fd store refused %s (%s): it will not survive a service "
             "restart (FileDescriptorStoreMax?)",
             name, strerror(errno));
}

/* Kinds of a session's descriptors, in the order of sv_session.fds:
 * connection, uffd, pidfd, shared state. */
const char session_fd_kind[4] = {'C', 'U', 'P', 'M'};

static const char *session_fdname(uint64_t id, int i, char *buf, size_t len) {
  char n[32];
  snprintf(n, sizeof n, "%llu", (unsigned long long)id);
  return fdname(session_fd_kind[i], n, buf, len);
}

void close_listener(struct sv *v, struct sv_listener *l) {
  char n[96];
  if (l->fd < 0) return;
  notify_fdstore_remove(fdname('L', l->name, n, sizeof n));
  ep_del(v, l->fd);
  close(l->fd);
  l->fd = -1;
  if (l->bound_path) unlink(l->bound_path);
  free(l->bound_path);
  l->bound_path = NULL;
}

/* A socket bound at c->socket with its mode and owner, listening; the
 * descriptor, or -1 with the reason in err (a path not ours is never
 * unlinked). */
int bind_listener(const struct listener_conf *c, char *err, size_t errlen) {
  char why[PATH_MAX + 128];
  int fd = sockfile_open(c, why, sizeof why);
  if (fd < 0) {
    snprintf(err, errlen, "listener %s: %s", c->name, why);
    return -1;
  }
  log_info("listener %s on %s (mode %04o)", c->name, c->socket, c->socket_mode);
  return fd;
}

/* l accepts on fd, bound at path, from now on. */
void install_listener(struct sv *v, struct sv_listener *l, int fd,
                      const char *path) {
  l->fd = fd;
  l->bound_path = strdup(path);
  ep_add(v, fd, EPOLLIN, l);
  char n[96];
  store_fd(&fd, 1, fdname('L', l->name, n, sizeof n));
}

int open_listener(struct sv *v, struct sv_listener *l) {
  char err[PATH_MAX + 256] = "";
  int fd = bind_listener(l->conf, err, sizeof err);
  if (fd < 0) {
    log_error("%s", err);
    return -1;
  }
  install_listener(v, l, fd, l->conf->socket);
  return 0;
}

struct sv_listener *find_listener(struct sv *v, const char *name) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (!strcmp(l->name, name)) return l;
  return NULL;
}

/* The record of listener `name`, made if new, with its counters: those
 * handed over in stats_fd if >= 0, else new ones. */
struct sv_listener *listener_record(struct sv *v, const char *name,
                                    int stats_fd) {
  struct sv_listener *l = find_listener(v, name);
  if (l) return l;
  l = calloc(1, sizeof *l);
  l->kind = K_LISTENER;
  l->fd = -1;
  l->staged = -1;
  snprintf(l->name, sizeof l->name, "%s", name);
  snprintf(l->what, sizeof l->what, "listener %s", name);
  l->intake.what = l->what;
  l->stats_fd = stats_fd;
  if (stats_fd >= 0)
    l->stats = listener_stats_map(stats_fd);
  else
    l->stats_fd = listener_stats_create(&l->stats);
  if (l->stats_fd < 0 || !l->stats) {
    log_error("listener %s: cannot set up its counters: %s", name,
              strerror(errno));
    close_if(l->stats_fd);
    free(l);
    return NULL;
  }
  char n[96];
  store_fd(&l->stats_fd, 1, fdname('S', name, n, sizeof n));
  l->next = v->ls;
  v->ls = l;
  return l;
}

struct sv_listener *get_listener(struct sv *v, const char *name) {
  return listener_record(v, name, -1);
}

/* ---- sessions ---- */

void end_session(struct sv *v, uint64_t id, int reason) {
  for (struct sv_session **pp = &v->sessions; *pp; pp = &(*pp)->next) {
    struct sv_session *s = *pp;
    if (s->id != id) continue;
    *pp = s->next;
    session_counters_add(&s->l->stats->ended, &s->shm->counters);
    __atomic_fetch_sub(&s->l->stats->sessions_live, 1, __ATOMIC_RELAXED);
    s->l->live--;
    s->gen->sessions--;
    if (reason != END_SHUTDOWN) v->ended++;
    if (reason == END_REFUSED && s->shm->source_identity[0]) {
      /* A worker took it over but cannot serve it: with its uffd closed
       * the VM would fault in zeros, so it is killed. */
      log_error("session %llu (pid %d) on %s could not be taken over by a "
                "new worker; killing the VM",
                (unsigned long long)id, s->shm->pid, s->l->name);
      kill_session_vm(s);
    } else if (reason == END_REFUSED) {
      log_limited(&s->l->lim_rejected, LOG_WARN,
                  "session %llu (pid %d) on %s was refused by its source",
                  (unsigned long long)id, s->shm->pid, s->l->name);
    }
    munmap(s->shm, s->shm_len);
    for (int i = 0; i < 4; i++) {
      char n[96];
      if (s->fds[i] >= 0)
        notify_fdstore_remove(session_fdname(s->id, i, n, sizeof n));
      close_if(s->fds[i]);
    }
    struct gen *g = s->gen;
    free(s);
    if (!v->stopping) maybe_retire(v, g);
    return;
  }
}

static int fill_shm(struct sv *v, struct pending *p, const struct handshake *h,
                    struct session_shm **out, size_t *len) {
  uint64_t npages = 0;
  for (uint32_t i = 0; i < h->nregions; i++)
    npages += h->regions[i].size / h->page_size;
  int fd = session_shm_create(npages, out, len);
  if (fd < 0) return -1;
  struct session_shm *m = *out;
  m->id = ++v->next_id;
  snprintf(m->listener, sizeof m->listener, "%s", p->l->name);
  m->pid = p->cred.pid;
  m->uid = p->cred.uid;
  m->page_size = h->page_size;
  m->nregions = h->nregions;
  m->keeps_socket = (uint32_t)h->keeps_socket;
  m->started_unix_ns = clock_unix_ns();
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
    ep_del(v, p->conn);
  free(p->buf);
  free(p);
}

static void reject(struct sv *v, struct pending *p, const char *why) {
  log_limited(&p->l->lim_rejected, LOG_WARN,
              "listener %s: closing connection from pid %d uid %d: %s",
              p->l->name, p->cred.pid, p->cred.uid, why);
  __atomic_fetch_add(&p->l->stats->handshake_errors, 1, __ATOMIC_RELAXED);
  close_if(p->uffd);
  close_if(p->pidfd);
  free_pending(v, p, 1);
}

/* Adds a session whose fds and shared state are ready. */
struct sv_session *add_session(struct sv *v, struct sv_listener *l,
                               const int fds[4], struct session_shm *shm,
                               size_t len) {
  struct sv_session *s = calloc(1, sizeof *s);
  s->id = shm->id;
  s->l = l;
  s->gen = gen_by_id(v, shm->gen);
  if (!s->gen) s->gen = l->gen;
  shm->gen = (uint32_t)s->gen->id;
  memcpy(s->fds, fds, sizeof s->fds);
  s->shm = shm;
  s->shm_len = len;
  s->next = v->sessions;
  v->sessions = s;
  l->live++;
  s->gen->sessions++;
  __atomic_fetch_add(&l->stats->sessions_live, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 4; i++) {
    char n[96];
    if (fds[i] >= 0)
      store_fd(&fds[i], 1, session_fdname(s->id, i, n, sizeof n));
  }
  if (s->gen->ready) send_session(s);
  return s;
}

static void start_session(struct sv *v, struct pending *p,
                          const struct handshake *h) {
  struct session_shm *shm;
  size_t len;
  int shmfd = fill_shm(v, p, h, &shm, &len);
  if (shmfd < 0) {
    reject(v, p, "cannot allocate session state");
    return;
  }
  __atomic_fetch_add(&p->l->stats->sessions_total, 1, __ATOMIC_RELAXED);
  log_info("session %llu: pid %d uid %d on %s, %u regions, page size %u%s",
           (unsigned long long)shm->id, p->cred.pid, p->cred.uid, p->l->name,
           h->nregions, h->page_size,
           h->consumed < p->len ? " (extra bytes after the handshake kept)"
                                : "");
  if (!peer_can_signal(p->cred.pid, p->pidfd) &&
      p->l->conf->on_source_error == ON_ERROR_KILL)
    log_warn("session %llu: the VMM's process cannot be identified (pid %d, "
             "no pidfd): on_source_error = kill cannot signal it and poisons "
             "the page instead (as sigbus); the session ends when it hangs up",
             (unsigned long long)shm->id, p->cred.pid);
  int fds[4] = {p->conn, p->uffd, p->pidfd, shmfd};
  struct sv_listener *l = p->l;
  free_pending(v, p, 0);
  add_session(v, l, fds, shm, len);
}

static int is_uffd(int fd) {
  char path[64], target[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = 0;
  return !strcmp(target, "anon_inode:[userfaultfd]");
}

/* Why the descriptor a peer sent cannot serve a session, or NULL. */
static const char *uffd_refusal(int fd) {
  if (fd < 0) return "handshake came without a file descriptor";
  if (!is_uffd(fd)) return "the descriptor sent is not a userfaultfd";
  /* A blocking uffd would stall the fault loop in read() */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || !(fl & O_NONBLOCK))
    return "the userfaultfd is blocking (created without O_NONBLOCK, which "
           "Firecracker always sets); it cannot be served";
  return NULL;
}

/* Keeps the first descriptor received, closes every other. */
static void take_fds(struct pending *p, struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
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

/* Judges what has arrived so far.  Returns 1 when the connection is
 * settled (accepted or rejected), 0 to wait for more. */
static int judge(struct sv *v, struct pending *p, ssize_t r, size_t max) {
  struct handshake h;
  char err[512];
  int st =
      handshake_feed(&p->scan, p->buf, p->len,
                     (uint32_t)p->l->conf->max_regions, &h, err, sizeof err);
  if (st == HS_INVALID) {
    reject(v, p, err);
  } else if (st == HS_COMPLETE) {
    const char *why = uffd_refusal(p->uffd);
    if (!why) why = peer_refusal(p->cred.pid, p->pidfd, h.keeps_socket);
    if (why)
      reject(v, p, why);
    else
      start_session(v, p, &h);
  } else if (r == 0) {
    snprintf(err, sizeof err,
             "connection closed after %zu bytes, before the handshake was "
             "complete",
             p->len);
    reject(v, p, err);
  } else if (p->len == max) {
    snprintf(err, sizeof err, "handshake longer than max_handshake_bytes (%zu)",
             max);
    reject(v, p, err);
  } else {
    return 0;
  }
  return 1;
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
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r > 0 || mh.msg_controllen) take_fds(p, &mh);
    if (r < 0) {
      char why[128];
      snprintf(why, sizeof why, "receive failed: %s", strerror(errno));
      reject(v, p, why);
      return;
    }
    p->len += (size_t)r;
    if (judge(v, p, r, max)) return;
  }
}

/* Stops polling l while descriptors are exhausted (see intake.h). */
static void pause_accepting(struct sv *v, struct sv_listener *l) {
  struct epoll_event e = {.events = 0, .data.ptr = l};
  epoll_ctl(v->ep, EPOLL_CTL_MOD, l->fd, &e);
}

static void resume_due(struct sv *v) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (intake_resume_due(&l->intake) && l->fd >= 0 && !v->upgrade) {
      struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
      epoll_ctl(v->ep, EPOLL_CTL_MOD, l->fd, &e);
    }
}

static void on_accept(struct sv *v, struct sv_listener *l) {
  /* Closed by an earlier event of the same batch (a drain or a reload). */
  if (l->fd < 0) return;
  for (;;) {
    int conn = intake_accept(&l->intake, l->fd);
    if (conn < 0) {
      if (errno != EAGAIN) pause_accepting(v, l);
      return;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    const char *why =
        !peer_allowed(l->conf, &cr) ? "not in allow_uids/allow_gids"
        : l->live + l->pending >= l->conf->max_sessions ? "max_sessions reached"
                                                        : NULL;
    if (why) {
      log_limited(&l->lim_refused, LOG_WARN,
                  "listener %s: refused pid %d uid %d gid %d: %s", l->name,
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
    p->pidfd = peer_pidfd(conn, cr.pid);
    p->deadline = clock_mono_ns() + l->conf->handshake_timeout_ns;
    if (p->pidfd < 0 && errno == ESRCH) {
      /* Without a pidfd a 1.1-1.11 session could never tell it ended. */
      log_limited(&l->lim_refused, LOG_WARN,
                  "listener %s: pid %d exited before its connection was "
                  "accepted; closing it",
                  l->name, cr.pid);
      close(conn);
      free(p);
      continue;
    }
    p->buf = malloc(l->conf->max_handshake_bytes);
    p->next = v->pending;
    v->pending = p;
    l->pending++;
    ep_add(v, conn, EPOLLIN | EPOLLRDHUP, p);
    on_pending(v, p);
  }
}

static void expire_pending(struct sv *v) {
  uint64_t t = clock_mono_ns();
  for (struct pending *p = v->pending, *n; p; p = n) {
    n = p->next;
    if (t >= p->deadline)
      reject(v, p, "no complete handshake before handshake_timeout");
  }
}

/* ---- drain ---- */

static int drain(struct sv *v, const char *name, char *err, size_t errlen) {
  struct sv_listener *l = find_listener(v, name);
  if (!l || l->fd < 0) {
    snprintf(err, errlen, "no accepting listener named '%s'", name);
    return -1;
  }
  close_listener(v, l);
  l->drained = 1;
  log_info("listener %s drained: no new sessions; %d live ones keep running",
           name, l->live);
  return 0;
}

/* ---- the control socket's view ---- */

static void ctl_each_listener(void *opaque, stats_listener_fn fn, void *arg) {
  struct sv *v = opaque;
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    const struct listener_conf *c =
        v->current ? conf_find_listener(v->current->conf, l->name) : NULL;
    char source[256] = "";
    if (c) conf_stack_name(c, source, sizeof source);
    struct stats_listener cl = {.name = l->name,
                                .socket = l->bound_path ? l->bound_path
                                          : c           ? c->socket
                                                        : "",
                                .source = source,
                                .accepting = l->fd >= 0 || l->staged >= 0,
                                .stats = l->stats};
    fn(arg, &cl);
  }
}

static void ctl_each_session(void *opaque, stats_session_fn fn, void *arg) {
  struct sv *v = opaque;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    fn(arg, s->shm);
}

static int ctl_reload(void *opaque, char *err, size_t len) {
  return reload(opaque, err, len);
}

static int ctl_drain(void *opaque, const char *listener, char *err,
                     size_t len) {
  return drain(opaque, listener, err, len);
}

static int setup_control(struct sv *v) {
  v->view = (struct control_view){.stats = {.each_listener = ctl_each_listener,
                                            .each_session = ctl_each_session,
                                            .opaque = v},
                                  .reload = ctl_reload,
                                  .drain = ctl_drain,
                                  .opaque = v};
  char err[1024];
  if (control_open(&v->ctl, v->current->conf, &v->view, err, sizeof err) < 0) {
    log_error("%s", err);
    return -1;
  }
  v->control_kind = K_CONTROL;
  if (v->ctl) ep_add(v, control_fd(v->ctl), EPOLLIN, &v->control_kind);
  return 0;
}

/* ---- main loop ---- */

static int next_timeout_ms(struct sv *v) {
  uint64_t t = clock_mono_ns(), next = UINT64_MAX;
  for (struct pending *p = v->pending; p; p = p->next)
    if (p->deadline < next) next = p->deadline;
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->restart_at && g->restart_at < next) next = g->restart_at;
  if (v->watchdog_at && v->watchdog_at < next) next = v->watchdog_at;
  int ms = next == UINT64_MAX ? -1
           : next <= t        ? 0
                              : (int)((next - t) / 1000000 + 1);
  for (struct sv_listener *l = v->ls; l; l = l->next)
    ms = intake_timeout(&l->intake, ms);
  return ms;
}

static void on_signal(struct sv *v) {
  struct signalfd_siginfo si;
  char err[1024];
  while (read(v->sigfd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGCHLD) {
      on_child(v);
    } else if (si.ssi_signo == SIGHUP) {
      if (reload(v, err, sizeof err) < 0) log_error("reload: %s", err);
    } else if (si.ssi_signo == SIGUSR2) {
      v->upgrade = 1;
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      log_info("stopping (signal %u)", si.ssi_signo);
      v->stopping = 1;
    }
  }
}

/* With exit_when_idle: whether to stop now, a session having ended with
 * none live or in its handshake (an upgrade waiting goes first). */
static int idle_done(struct sv *v) {
  if (!v->opts->exit_when_idle || !v->ended || v->sessions || v->pending ||
      v->upgrade)
    return 0;
  log_info("exiting: a session ended and no other is live or in its "
           "handshake (--exit-when-idle)");
  return 1;
}

static int run_loop(struct sv *v) {
  struct epoll_event ev[32];
  while (!v->stopping && !v->failed) {
    int n =
        epoll_wait(v->ep, ev, 32, control_timeout(v->ctl, next_timeout_ms(v)));
    if (n < 0 && errno != EINTR) return -1;
    for (int i = 0; i < n; i++) {
      enum kind *k = ev[i].data.ptr;
      if (*k == K_SIGNAL)
        on_signal(v);
      else if (*k == K_LISTENER)
        on_accept(v, (struct sv_listener *)k);
      else if (*k == K_PENDING)
        on_pending(v, (struct pending *)k);
      else if (*k == K_WORKER)
        on_worker_msg(v, (struct gen *)k);
    }
    free_dead_gens(v);
    control_run(v->ctl);
    expire_pending(v);
    resume_due(v);
    restart_due(v);
    if (v->watchdog_ns && clock_mono_ns() >= v->watchdog_at) {
      notify_watchdog();
      v->watchdog_at = clock_mono_ns() + v->watchdog_ns;
    }
    if (v->upgrade) upgrade_when_idle(v);
    if (idle_done(v)) break;
  }
  return v->failed ? -1 : 0;
}

static void shutdown_all(struct sv *v) {
  notify_stopping();
  int live = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    live++;
  if (live)
    log_warn("stopping with %d live sessions: their VMs can no longer fault "
             "in memory",
             live);
  for (struct sv_listener *l = v->ls; l; l = l->next)
    close_listener(v, l);
  unstage(v, NULL);
  for (struct gen *g = v->gens; g; g = g->next)
    stop_worker(g);
  while (v->sessions)
    end_session(v, v->sessions->id, END_SHUTDOWN);
  while (v->pending) {
    close_if(v->pending->uffd);
    close_if(v->pending->pidfd);
    free_pending(v, v->pending, 1);
  }
  while (v->gens)
    free_gen(v, v->gens);
  free_dead_gens(v);
  while (v->ls) {
    struct sv_listener *l = v->ls;
    v->ls = l->next;
    munmap(l->stats, sizeof *l->stats);
    close_if(l->stats_fd);
    free(l);
  }
}

static int setup(struct sv *v, struct daemon_conf *conf) {
  v->exe_fd = selfexe_open();
  if (v->exe_fd < 0) {
    log_error("cannot open /proc/self/exe: %s", strerror(errno));
    return -1;
  }
  v->ep = epoll_create1(EPOLL_CLOEXEC);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  v->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  v->sig_kind = K_SIGNAL;
  ep_add(v, v->sigfd, EPOLLIN, &v->sig_kind);
  /* ids stay unique across runs */
  v->next_id = clock_unix_ns() / 1000000000ull << 20;
  struct handed *h = NULL;
  int nh = handover_collect(&h);
  if (nh > 0) adopt_stats(v, h, nh);
  struct gen *handed = nh > 0 ? adopt_gens(v, h, nh) : NULL;
  if (nh > 0) genpin_adopt(v, h, nh);
  if (handed) { /* serve exactly what the previous process served */
    if (conf) {
      conf_free(conf);
      free(conf);
    }
    conf = handed->conf;
  } else if (!conf) {
    log_error("no usable configuration: the file does not load and none "
              "was handed over");
    free(h);
    return -1;
  }
  if (nh > 0) adopt_listeners(v, conf, h, nh);
  v->current = handed ? handed : new_gen(v, conf);
  int r = v->current ? point_listeners(v, v->current) : -1;
  if (nh > 0 && v->current) {
    adopt_sessions(v, h, nh);
    for (struct gen *g = v->gens; g; g = g->next)
      if (g != v->current && g->sessions) spawn_worker(v, g);
  }
  free(h);
  if (r == 0) r = setup_control(v);
  uint64_t wd = notify_watchdog_interval_us();
  v->watchdog_ns = wd * 500; /* half the interval, in ns */
  v->watchdog_at = wd ? clock_mono_ns() + v->watchdog_ns : 0;
  return r;
}

int supervisor_run(struct daemon_conf *conf, const struct supervisor_opts *o) {
  struct sv v = {.opts = o, .exe_fd = -1};
  int rc = 1;
  if (setup(&v, conf) == 0) {
    spawn_worker(&v, v.current);
    rc = v.current->pid && run_loop(&v) == 0 ? 0 : 1;
  } else if (!v.current && conf) {
    conf_free(conf);
    free(conf);
  }
  v.stopping = 1;
  control_close(v.ctl);
  shutdown_all(&v);
  close_if(v.sigfd);
  close_if(v.ep);
  close_if(v.exe_fd);
  return rc;
}

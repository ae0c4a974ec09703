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
#include "shm.h"
#include "sockfile.h"

#define MAX_FDS_IN_HANDSHAKE 16

enum kind { K_LISTENER, K_PENDING, K_WORKER, K_SIGNAL, K_CONTROL };

/* A generation of the configuration and the worker serving it.  A reload
 * makes a new one; sessions stay with the generation they started in, so a
 * reload never changes what a live VM is served, even across a worker
 * crash.  A generation with no sessions that is not current is retired. */
struct gen {
  enum kind kind; /* K_WORKER: its ipc socket in epoll */
  int id;
  struct daemon_conf *conf;
  int config_fd;
  pid_t pid;
  int ipc;
  int ready;
  int ever_ready;
  uint64_t started;
  uint64_t restart_at; /* 0: none scheduled */
  uint64_t restart_delay;
  int sessions;
  struct gen *next;
};

/* A listener, by name, across generations. */
struct sv_listener {
  enum kind kind;
  char name[64];
  const struct listener_conf *conf; /* of gen */
  struct gen *gen;
  int fd; /* -1: not accepting (drained, removed, or not yet active) */
  char *bound_path;
  int stats_fd;
  struct listener_stats *stats;
  int pending;
  int live;
  int drained;          /* closed by `ctl drain`: stays closed until a reload */
  char what[80];        /* "listener NAME", for intake's messages */
  struct intake intake; /* accepting, paused while descriptors run out */
  /* Every message a peer can trigger: refused at once, or while in
   * its handshake; one limit each. */
  struct log_limit lim_refused, lim_rejected;
  struct sv_listener *next;
};

struct pending {
  enum kind kind;
  struct sv_listener *l;
  int conn, uffd, pidfd;
  struct ucred cred;
  uint64_t deadline;
  char *buf;
  size_t len;
  struct hs_scan scan; /* how far buf was scanned */
  struct pending *next;
};

struct sv_session {
  uint64_t id;
  struct sv_listener *l;
  struct gen *gen;
  int fds[4]; /* conn, uffd, pidfd, shm */
  struct session_shm *shm;
  size_t shm_len;
  struct sv_session *next;
};

struct sv {
  const struct supervisor_opts *opts;
  int ep;
  int sigfd;
  enum kind sig_kind;
  struct gen *gens;
  struct gen *current;
  struct gen *loading; /* a reload waiting for its worker's READY */
  struct gen *dead;    /* freed after the epoll batch that may name them */
  int next_gen;
  struct sv_listener *ls;
  struct pending *pending;
  struct sv_session *sessions;
  uint64_t next_id;
  char exe[PATH_MAX];
  int stopping;
  int failed;
  int upgrade;          /* SIGUSR2 seen: re-execute once no handshake is open */
  int upgrade_logged;   /* the wait for handshakes was logged */
  uint64_t watchdog_ns; /* 0: no watchdog */
  uint64_t watchdog_at;
  enum kind control_kind;
  struct control *ctl;
  struct control_view view;
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
  if (fd >= 0) close(fd);
}

/* ---- listening sockets ---- */

/* Mode and owner of the listener's socket file, as the config says, on
 * the node it is bound to only. */
static int apply_access(struct sv_listener *l, const struct listener_conf *c) {
  char err[512];
  if (sockfile_apply(l->fd, c, err, sizeof err) == 0) return 0;
  log_error("listener %s: %s", c->name, err);
  return -1;
}

static void ep_del(struct sv *v, int fd) {
  epoll_ctl(v->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* The name a descriptor is stored and handed over under. */
static const char *fdname(char kind, const char *what, char *buf, size_t len) {
  snprintf(buf, len, "%c-%s", kind, what);
  return buf;
}

/* Puts a descriptor in systemd's fd store (a no-op outside systemd); a
 * refusal means it would not survive a service restart: say so. */
static void store_fd(const int *fd, int n, const char *name) {
  if (notify_fdstore(fd, n, name) < 0)
    log_warn("fd store refused %s (%s): it will not survive a service "
             "restart (FileDescriptorStoreMax?)",
             name, strerror(errno));
}

/* Kinds of a session's descriptors, in the order of sv_session.fds:
 * connection, uffd, pidfd, shared state. */
static const char session_fd_kind[4] = {'C', 'U', 'P', 'M'};

static const char *session_fdname(uint64_t id, int i, char *buf, size_t len) {
  char n[32];
  snprintf(n, sizeof n, "%llu", (unsigned long long)id);
  return fdname(session_fd_kind[i], n, buf, len);
}

static void close_listener(struct sv *v, struct sv_listener *l) {
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

static int open_listener(struct sv *v, struct sv_listener *l) {
  const struct listener_conf *c = l->conf;
  char err[512];
  int fd = sockfile_open(c, err, sizeof err);
  if (fd < 0) {
    log_error("listener %s: %s", c->name, err);
    return -1;
  }
  l->fd = fd;
  l->bound_path = strdup(c->socket);
  ep_add(v, fd, EPOLLIN, l);
  char n[96];
  store_fd(&fd, 1, fdname('L', l->name, n, sizeof n));
  log_info("listener %s on %s (mode %04o)", c->name, c->socket, c->socket_mode);
  return 0;
}

static struct sv_listener *find_listener(struct sv *v, const char *name) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (!strcmp(l->name, name)) return l;
  return NULL;
}

/* The record of listener `name`, made if new, with its counters: those
 * handed over in stats_fd if >= 0, else new ones. */
static struct sv_listener *listener_record(struct sv *v, const char *name,
                                           int stats_fd) {
  struct sv_listener *l = find_listener(v, name);
  if (l) return l;
  l = calloc(1, sizeof *l);
  l->kind = K_LISTENER;
  l->fd = -1;
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

static struct sv_listener *get_listener(struct sv *v, const char *name) {
  return listener_record(v, name, -1);
}

/* ---- generations and their workers ---- */

static const char *fdname(char kind, const char *what, char *buf, size_t len);

/* A generation for conf: a new one (id 0, config_fd -1), or one handed
 * over by the previous supervisor with its id and text. */
static struct gen *make_gen(struct sv *v, struct daemon_conf *conf, int id,
                            int config_fd) {
  struct gen *g = calloc(1, sizeof *g);
  g->kind = K_WORKER;
  g->id = id ? id : ++v->next_gen;
  if (g->id > v->next_gen) v->next_gen = g->id;
  g->conf = conf;
  g->ipc = -1;
  g->config_fd = config_fd;
  size_t len = strlen(conf->text);
  if (config_fd < 0) g->config_fd = memfd_create("uffdkit-config", MFD_CLOEXEC);
  if (g->config_fd < 0 ||
      (config_fd < 0 && write(g->config_fd, conf->text, len) != (ssize_t)len)) {
    log_error("cannot hold the configuration: %s", strerror(errno));
    close_if(g->config_fd);
    free(g);
    return NULL;
  }
  for (int i = 0; i < conf->n_listeners; i++)
    if (!get_listener(v, conf->listeners[i].name)) {
      close(g->config_fd);
      free(g);
      return NULL;
    }
  g->next = v->gens;
  v->gens = g;
  char gid[16], n[96];
  snprintf(gid, sizeof gid, "%d", g->id);
  store_fd(&g->config_fd, 1, fdname('T', gid, n, sizeof n));
  return g;
}

static struct gen *new_gen(struct sv *v, struct daemon_conf *conf) {
  return make_gen(v, conf, 0, -1);
}

static void free_gen(struct sv *v, struct gen *g) {
  char id[16], n[96];
  snprintf(id, sizeof id, "%d", g->id);
  notify_fdstore_remove(fdname('T', id, n, sizeof n));
  for (struct gen **pp = &v->gens; *pp; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
  close_if(g->config_fd);
  conf_free(g->conf);
  free(g->conf);
  /* A later event of the batch being handled may still point at g (its
   * worker's socket, seen readable before the SIGCHLD that ended it). */
  g->ipc = -1;
  g->next = v->dead;
  v->dead = g;
}

static void free_dead_gens(struct sv *v) {
  while (v->dead) {
    struct gen *g = v->dead;
    v->dead = g->next;
    free(g);
  }
}

static struct gen *gen_by_id(struct sv *v, uint32_t id) {
  for (struct gen *g = v->gens; g; g = g->next)
    if ((uint32_t)g->id == id) return g;
  return NULL;
}

static struct gen *gen_by_pid(struct sv *v, pid_t pid) {
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->pid == pid) return g;
  return NULL;
}

static void send_session(struct sv_session *s) {
  struct ipc_msg m = {.type = IPC_SESSION, .id = s->id};
  snprintf(m.name, sizeof m.name, "%s", s->l->name);
  if (ipc_send(s->gen->ipc, &m, s->fds, 4) < 0)
    log_warn("session %llu: could not hand to the worker: %s",
             (unsigned long long)s->id, strerror(errno));
}

static void exec_worker(struct sv *v, struct gen *g, int ipc_fd) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  int ipc = dup(ipc_fd), cfd = dup(g->config_fd); /* without CLOEXEC */
  char a_ipc[16], a_cfd[16];
  snprintf(a_ipc, sizeof a_ipc, "%d", ipc);
  snprintf(a_cfd, sizeof a_cfd, "%d", cfd);
  char *argv[16] = {"uffdkit",     "--worker", "--ipc-fd",      a_ipc,
                    "--config-fd", a_cfd,      "--config-name", g->conf->file};
  int n = 8;
  if (v->opts->log_level) {
    argv[n++] = "--log-level";
    argv[n++] = (char *)v->opts->log_level;
  }
  if (v->opts->log_format) {
    argv[n++] = "--log-format";
    argv[n++] = (char *)v->opts->log_format;
  }
  if (v->opts->plugin_dir) {
    argv[n++] = "--plugin-dir";
    argv[n++] = (char *)v->opts->plugin_dir;
  }
  argv[n] = NULL;
  execv(v->exe, argv);
  log_error("exec %s: %s", v->exe, strerror(errno));
  _exit(127);
}

static void spawn_worker(struct sv *v, struct gen *g) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
    log_error("socketpair: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) exec_worker(v, g, sp[1]);
  close(sp[1]);
  if (pid < 0) {
    log_error("fork: %s", strerror(errno));
    close(sp[0]);
    return;
  }
  g->pid = pid;
  g->ipc = sp[0];
  g->ready = 0;
  g->started = now_ns();
  fcntl(g->ipc, F_SETFL, O_NONBLOCK);
  ep_add(v, g->ipc, EPOLLIN, g);
  for (int i = 0; i < g->conf->n_listeners; i++) {
    struct sv_listener *l = find_listener(v, g->conf->listeners[i].name);
    struct ipc_msg m = {.type = IPC_LISTENER};
    snprintf(m.name, sizeof m.name, "%s", l->name);
    ipc_send(g->ipc, &m, &l->stats_fd, 1);
  }
}

static void stop_worker(struct gen *g) {
  if (!g->pid) return;
  kill(g->pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    pid_t r = waitpid(g->pid, NULL, WNOHANG);
    if (r == g->pid || (r < 0 && errno == ECHILD)) { /* gone, or reaped */
      g->pid = 0;
      return;
    }
    usleep(50000);
  }
  log_warn("worker %d did not stop in 5 s; killing it", g->pid);
  kill(g->pid, SIGKILL);
  waitpid(g->pid, NULL, 0);
  g->pid = 0;
}

/* A generation nobody needs any more: its worker is told to stop. */
static void maybe_retire(struct sv *v, struct gen *g) {
  if (g == v->current || g == v->loading || g->sessions) return;
  if (g->pid) {
    log_info("configuration generation %d has no sessions left; stopping "
             "worker %d",
             g->id, g->pid);
    kill(g->pid, SIGTERM);
    return; /* freed when it exits */
  }
  free_gen(v, g);
}

/* Points every listener of g at g's settings, opening, re-permissioning
 * or closing sockets as needed.  Returns -1 if a socket could not be
 * opened. */
static int activate(struct sv *v, struct gen *g) {
  int bad = 0;
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    const struct listener_conf *c = conf_find_listener(g->conf, l->name);
    if (!c) {
      if (l->fd >= 0)
        log_info("listener %s removed; its %d live sessions keep running",
                 l->name, l->live);
      close_listener(v, l);
      continue;
    }
    int moved = l->fd >= 0 && strcmp(l->bound_path, c->socket);
    if (moved) close_listener(v, l);
    l->conf = c;
    l->gen = g;
    if (l->fd >= 0)
      bad |= apply_access(l, c) < 0;
    else if (!l->drained)
      bad |= open_listener(v, l) < 0;
  }
  return bad ? -1 : 0;
}

static void worker_ready(struct sv *v, struct gen *g) {
  g->ready = 1;
  if (g == v->loading) {
    struct gen *old = v->current;
    v->loading = NULL;
    v->current = g;
    for (struct sv_listener *l = v->ls; l; l = l->next)
      l->drained = 0; /* a reload reopens what the config lists */
    if (activate(v, g) < 0)
      log_error("reload: some listeners could not be opened (see above)");
    log_info("configuration generation %d (%s) is live", g->id, g->conf->file);
    maybe_retire(v, old);
    notify_ready();
  }
  int n = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    if (s->gen == g) {
      send_session(s);
      n++;
    }
  if (g->ever_ready)
    log_info("worker %d ready; handed back %d live sessions", g->pid, n);
  else
    log_info("worker %d ready", g->pid);
  if (g == v->current && !g->ever_ready) notify_ready();
  g->ever_ready = 1;
  notify_status("serving: generation %d, %d live sessions", v->current->id,
                v->current->sessions);
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
    if (s->id != id) continue;
    *pp = s->next;
    add_counters(&s->l->stats->ended, &s->shm->counters);
    __atomic_fetch_sub(&s->l->stats->sessions_live, 1, __ATOMIC_RELAXED);
    s->l->live--;
    s->gen->sessions--;
    if (reason == END_REFUSED)
      log_limited(&s->l->lim_rejected, LOG_WARN,
                  "session %llu (pid %d) on %s was refused by its source",
                  (unsigned long long)id, s->shm->pid, s->l->name);
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
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m->started_unix_ns =
      (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
static struct sv_session *add_session(struct sv *v, struct sv_listener *l,
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
    p->deadline = now_ns() + l->conf->handshake_timeout_ns;
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
  uint64_t t = now_ns();
  for (struct pending *p = v->pending, *n; p; p = n) {
    n = p->next;
    if (t >= p->deadline)
      reject(v, p, "no complete handshake before handshake_timeout");
  }
}

/* ---- workers' messages and deaths ---- */

static void on_worker_msg(struct sv *v, struct gen *g) {
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  while (g->ipc >= 0 && ipc_recv(g->ipc, &m, fds) > 0) {
    for (int i = 0; i < IPC_MAX_FDS; i++)
      close_if(fds[i]);
    if (m.type == IPC_READY)
      worker_ready(v, g);
    else if (m.type == IPC_END)
      end_session(v, m.id, m.code);
  }
}

static void schedule_restart(struct sv *v, struct gen *g, int status) {
  /* Quick deaths back off, up to 5 s; a worker that lived 10 s resets. */
  uint64_t lived = now_ns() - g->started;
  g->restart_delay = lived > 10000000000ull || !g->restart_delay
                         ? g->conf->worker_restart_delay_ns
                         : g->restart_delay * 2;
  if (g->restart_delay > 5000000000ull) g->restart_delay = 5000000000ull;
  g->restart_at = now_ns() + g->restart_delay;
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (l->gen == g)
      __atomic_fetch_add(&l->stats->worker_restarts, 1, __ATOMIC_RELAXED);
  log_error("worker %d died (%s %d); restarting it in %llu ms, its %d "
            "sessions kept",
            g->pid, WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
            (unsigned long long)(g->restart_delay / 1000000), g->sessions);
}

static void worker_exited(struct sv *v, struct gen *g, int status) {
  on_worker_msg(v, g); /* what it said before dying still counts */
  ep_del(v, g->ipc);
  close(g->ipc);
  g->ipc = -1;
  g->ready = 0;
  if (v->stopping) return;
  if (!g->ever_ready) {
    log_error("worker failed to start (%s %d)",
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    g->pid = 0;
    if (g == v->loading) {
      log_error("reload failed; keeping configuration generation %d",
                v->current->id);
      v->loading = NULL;
      free_gen(v, g);
      notify_ready(); /* RELOADING=1 is over: still serving */
    } else if (g == v->current && !v->sessions) {
      v->failed = 1;
    } else if (g == v->current || g->sessions) {
      log_error("worker of generation %d failed to start; retrying, since "
                "live sessions depend on it",
                g->id);
      schedule_restart(v, g, status);
    }
    return;
  }
  if (g != v->current && !g->sessions) {
    g->pid = 0;
    free_gen(v, g);
    return;
  }
  schedule_restart(v, g, status);
  g->pid = 0;
}

static void on_child(struct sv *v) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    struct gen *g = gen_by_pid(v, pid);
    if (g) worker_exited(v, g, status);
  }
}

/* ---- reload and drain ---- */

static int reload(struct sv *v, char *err, size_t errlen) {
  if (v->loading) {
    snprintf(err, errlen, "a reload is already in progress");
    return -1;
  }
  const struct daemon_conf *cur = v->current->conf;
  if (!strcmp(cur->file, "command line")) {
    snprintf(err, errlen, "started without a config file: nothing to reload");
    return -1;
  }
  struct daemon_conf *c = malloc(sizeof *c);
  if (conf_load_file(c, cur->file, err, errlen) < 0) {
    conf_free(c);
    free(c);
    return -1;
  }
  struct gen *g = new_gen(v, c);
  if (!g) {
    snprintf(err, errlen, "cannot set up the new configuration");
    conf_free(c);
    free(c);
    return -1;
  }
  v->loading = g;
  notify_reloading();
  spawn_worker(v, g);
  log_info("reloading %s as configuration generation %d", c->file, g->id);
  return 0;
}

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

static void ctl_each_listener(void *opaque, control_listener_fn fn, void *arg) {
  struct sv *v = opaque;
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    const struct listener_conf *c =
        v->current ? conf_find_listener(v->current->conf, l->name) : NULL;
    char source[256] = "";
    if (c) control_describe_source(c, source, sizeof source);
    struct control_listener cl = {.name = l->name,
                                  .socket = l->bound_path ? l->bound_path
                                            : c           ? c->socket
                                                          : "",
                                  .source = source,
                                  .accepting = l->fd >= 0,
                                  .stats = l->stats};
    fn(arg, &cl);
  }
}

static void ctl_each_session(void *opaque, control_session_fn fn, void *arg) {
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
  v->view = (struct control_view){.each_listener = ctl_each_listener,
                                  .each_session = ctl_each_session,
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

/* ---- handing over to the next supervisor ---- */

static int find_handed(struct handed *h, int n, char kind, const char *what) {
  char want[96];
  fdname(kind, what, want, sizeof want);
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && !strcmp(h[i].name, want)) return i;
  return -1;
}

static int take_handed(struct handed *h, int n, char kind, const char *what) {
  int i = find_handed(h, n, kind, what);
  if (i < 0) return -1;
  int fd = h[i].fd;
  h[i].fd = -1;
  return fd;
}

/* Generations handed over ("T-<id>": their exact config text); the
 * highest becomes current.  Returns it, or NULL if none was handed. */
static struct gen *adopt_gens(struct sv *v, struct handed *h, int n) {
  struct gen *cur = NULL;
  const char *name =
      v->opts->config_path ? v->opts->config_path : "command line";
  for (int i = 0; i < n; i++) {
    if (h[i].fd < 0 || h[i].name[0] != 'T' || h[i].name[1] != '-') continue;
    struct daemon_conf *c = malloc(sizeof *c);
    char err[2048];
    if (conf_load_fd(c, h[i].fd, name, err, sizeof err) < 0) {
      log_error("configuration generation %s handed over is unreadable: %s",
                h[i].name + 2, err);
      conf_free(c);
      free(c);
      continue;
    }
    fcntl(h[i].fd, F_SETFD, FD_CLOEXEC);
    struct gen *g = make_gen(v, c, atoi(h[i].name + 2), h[i].fd);
    h[i].fd = -1;
    if (g && (!cur || g->id > cur->id)) cur = g;
  }
  return cur;
}

/* Counters handed over ("S-<listener>"), before any generation makes new
 * ones, so totals carry across. */
static void adopt_stats(struct sv *v, struct handed *h, int n) {
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && h[i].name[0] == 'S' && h[i].name[1] == '-' &&
        listener_record(v, h[i].name + 2, h[i].fd))
      h[i].fd = -1;
}

/* Listening sockets handed over, kept where the config still has them. */
static void adopt_listeners(struct sv *v, const struct daemon_conf *c,
                            struct handed *h, int n) {
  for (int i = 0; i < c->n_listeners; i++) {
    const struct listener_conf *lc = &c->listeners[i];
    struct sv_listener *l = find_listener(v, lc->name);
    int fd = take_handed(h, n, 'L', lc->name);
    if (fd < 0) continue;
    struct sockaddr_un a;
    socklen_t al = sizeof a;
    if (!l || getsockname(fd, (struct sockaddr *)&a, &al) < 0 ||
        strcmp(a.sun_path, lc->socket)) {
      close(fd); /* the config moved it: a new socket is opened */
      continue;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    l->fd = fd;
    l->bound_path = strdup(lc->socket);
    ep_add(v, fd, EPOLLIN, l);
    log_info("listener %s: kept socket %s", l->name, lc->socket);
  }
}

/* One handed-over session, from its state memfd and descriptors. */
static void adopt_session(struct sv *v, struct handed *h, int n, int mi) {
  int fds[4] = {-1, -1, -1, h[mi].fd};
  h[mi].fd = -1;
  const char *id = h[mi].name + 2;
  for (int k = 0; k < 3; k++)
    fds[k] = take_handed(h, n, session_fd_kind[k], id);
  size_t len;
  struct session_shm *shm = session_shm_map(fds[3], &len);
  struct sv_listener *l = shm ? find_listener(v, shm->listener) : NULL;
  if (!shm || fds[1] < 0 || !l || !l->gen) {
    log_error("session %s handed over without %s; dropping it", id,
              !shm         ? "valid state"
              : fds[1] < 0 ? "its uffd"
                           : "a configured listener");
    if (shm) munmap(shm, len);
    for (int k = 0; k < 4; k++)
      close_if(fds[k]);
    return;
  }
  if (shm->id >= v->next_id) v->next_id = shm->id;
  add_session(v, l, fds, shm, len);
}

static void adopt_sessions(struct sv *v, struct handed *h, int n) {
  int count = 0;
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && h[i].name[0] == 'M' && h[i].name[1] == '-') {
      adopt_session(v, h, n, i);
      count++;
    }
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0) {
      log_warn("descriptor %d handed over as '%s' is not needed; closing it",
               h[i].fd, h[i].name);
      close(h[i].fd);
    }
  /* Handed-over counters already counted these sessions as live. */
  for (struct sv_listener *l = v->ls; l; l = l->next)
    __atomic_store_n(&l->stats->sessions_live, (uint64_t)l->live,
                     __ATOMIC_RELAXED);
  if (count) log_info("took over %d live sessions", count);
}

static int add_handed(struct handed **h, int *n, int fd, char kind,
                      const char *what) {
  if (fd < 0) return 0;
  *h = realloc(*h, (size_t)(*n + 1) * sizeof **h);
  (*h)[*n].fd = fd;
  fdname(kind, what, (*h)[*n].name, sizeof(*h)[*n].name);
  return ++*n;
}

/* SIGUSR2: stop the workers (sessions stay, as in a worker crash) and
 * re-execute the binary now at our path, handing every descriptor over. */
static void upgrade(struct sv *v) {
  struct handed *h = NULL;
  int n = 0;
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    add_handed(&h, &n, l->fd, 'L', l->name);
    add_handed(&h, &n, l->stats_fd, 'S', l->name);
  }
  for (struct sv_session *s = v->sessions; s; s = s->next)
    for (int i = 0; i < 4; i++) {
      char id[32];
      snprintf(id, sizeof id, "%llu", (unsigned long long)s->id);
      add_handed(&h, &n, s->fds[i], session_fd_kind[i], id);
    }
  /* Each live generation's exact text: an upgrade never re-reads the file,
   * and every session keeps the configuration it started with. */
  for (struct gen *g = v->gens; g; g = g->next)
    if (g == v->current || g->sessions) {
      char id[16];
      snprintf(id, sizeof id, "%d", g->id);
      add_handed(&h, &n, g->config_fd, 'T', id);
    }
  char exe[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[k > 0 ? k : 0] = 0;
  char *del = strstr(exe, " (deleted)"); /* replaced on disk: take the new */
  if (del) *del = 0;
  log_info("upgrading: re-executing %s, handing over %d descriptors", exe, n);
  for (struct gen *g = v->gens; g; g = g->next)
    stop_worker(g);
  handover_exec(exe, v->opts->argv, h, n);
  log_error("upgrade: exec %s failed: %s; this binary carries on", exe,
            strerror(errno));
  free(h);
  for (struct gen *g = v->gens; g; g = g->next)
    if (g == v->current || g->sessions) spawn_worker(v, g);
}

/* While an upgrade waits, new connections stay in the listeners' backlogs
 * for the next binary to accept. */
static void set_accepting(struct sv *v, int on) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (l->fd >= 0) {
      struct epoll_event e = {.events = on ? EPOLLIN : 0, .data.ptr = l};
      epoll_ctl(v->ep, EPOLL_CTL_MOD, l->fd, &e);
    }
}

/* A handshake in progress lives only in our memory: let every one finish
 * (each is bounded by its handshake_timeout) before re-executing, so an
 * upgrade never fails a VM that was connecting. */
static void upgrade_when_idle(struct sv *v) {
  set_accepting(v, 0);
  if (v->pending) {
    if (!v->upgrade_logged) {
      int n = 0;
      for (struct pending *p = v->pending; p; p = p->next)
        n++;
      log_info("upgrade: waiting for %d handshake%s in progress", n,
               n == 1 ? "" : "s");
      v->upgrade_logged = 1;
    }
    return;
  }
  v->upgrade = v->upgrade_logged = 0;
  upgrade(v);
  set_accepting(v, 1); /* only reached if the exec failed */
}

/* ---- main loop ---- */

static int next_timeout_ms(struct sv *v) {
  uint64_t t = now_ns(), next = UINT64_MAX;
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

static void restart_due(struct sv *v) {
  uint64_t t = now_ns();
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->restart_at && t >= g->restart_at) {
      g->restart_at = 0;
      spawn_worker(v, g);
    }
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
    if (v->watchdog_ns && now_ns() >= v->watchdog_at) {
      notify_watchdog();
      v->watchdog_at = now_ns() + v->watchdog_ns;
    }
    if (v->upgrade) upgrade_when_idle(v);
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
  ssize_t n = readlink("/proc/self/exe", v->exe, sizeof v->exe - 1);
  if (n < 0) return -1;
  v->exe[n] = 0;
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
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  v->next_id = (uint64_t)ts.tv_sec << 20; /* ids stay unique across runs */
  struct handed *h = NULL;
  int nh = handover_collect(&h);
  if (nh > 0) adopt_stats(v, h, nh);
  struct gen *handed = nh > 0 ? adopt_gens(v, h, nh) : NULL;
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
  int r = v->current ? activate(v, v->current) : -1;
  if (nh > 0 && v->current) {
    adopt_sessions(v, h, nh);
    for (struct gen *g = v->gens; g; g = g->next)
      if (g != v->current && g->sessions) spawn_worker(v, g);
  }
  free(h);
  if (r == 0) r = setup_control(v);
  uint64_t wd = notify_watchdog_interval_us();
  v->watchdog_ns = wd * 500; /* half the interval, in ns */
  v->watchdog_at = wd ? now_ns() + v->watchdog_ns : 0;
  return r;
}

int supervisor_run(struct daemon_conf *conf, const struct supervisor_opts *o) {
  struct sv v = {.opts = o};
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
  return rc;
}

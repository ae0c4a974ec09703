/* Configuration generations and their workers: starting, restarting and
 * retiring workers, staging a generation's sockets until its worker is
 * ready, and reloads (coalesced while one is loading). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "selfexe.h"
#include "sv.h"

/* Workers of one generation that may die before being ready, in a row,
 * before its sessions end per on_source_error. */
#define MAX_FAILED_STARTS 5

/* A generation for conf: a new one (id 0, config_fd -1), or one handed
 * over by the previous supervisor with its id and text. */
struct gen *make_gen(struct sv *v, struct daemon_conf *conf, int id,
                     int config_fd) {
  struct gen *g = calloc(1, sizeof *g);
  if (!g) {
    log_error("cannot hold the configuration: out of memory");
    close_if(config_fd);
    return NULL;
  }
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

struct gen *new_gen(struct sv *v, struct daemon_conf *conf) {
  return make_gen(v, conf, 0, -1);
}

void free_gen(struct sv *v, struct gen *g) {
  char id[16], n[96];
  snprintf(id, sizeof id, "%d", g->id);
  notify_fdstore_remove(fdname('T', id, n, sizeof n));
  for (struct gen **pp = &v->gens; *pp; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
  close_if(g->config_fd);
  genpin_free(g);
  conf_free(g->conf);
  free(g->conf);
  /* A later event of the batch being handled may still point at g (its
   * worker's socket, seen readable before the SIGCHLD that ended it). */
  g->ipc = -1;
  g->next = v->dead;
  v->dead = g;
}

void free_dead_gens(struct sv *v) {
  while (v->dead) {
    struct gen *g = v->dead;
    v->dead = g->next;
    free(g);
  }
}

struct gen *gen_by_id(struct sv *v, uint32_t id) {
  for (struct gen *g = v->gens; g; g = g->next)
    if ((uint32_t)g->id == id) return g;
  return NULL;
}

static struct gen *gen_by_pid(struct sv *v, pid_t pid) {
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->pid == pid) return g;
  return NULL;
}

void send_session(struct sv_session *s) {
  struct ipc_msg m = {.type = IPC_SESSION, .id = s->id};
  snprintf(m.name, sizeof m.name, "%s", s->l->name);
  if (ipc_send(s->gen->ipc, &m, s->fds, 4) < 0)
    sv_log(LOG_WARN, s, ": could not hand to the worker: %s", strerror(errno));
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
  selfexe_exec(v->exe_fd, argv);
  log_error("exec of this binary for a worker: %s", strerror(errno));
  _exit(127);
}

void spawn_worker(struct sv *v, struct gen *g) {
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
  g->started = clock_mono_ns();
  fcntl(g->ipc, F_SETFL, O_NONBLOCK);
  ep_add(v, g->ipc, EPOLLIN, g);
  genpin_send(g); /* before the listeners: the worker builds after them */
  for (int i = 0; i < g->conf->n_listeners; i++) {
    struct sv_listener *l = find_listener(v, g->conf->listeners[i].name);
    struct ipc_msg m = {.type = IPC_LISTENER};
    snprintf(m.name, sizeof m.name, "%s", l->name);
    ipc_send(g->ipc, &m, &l->stats_fd, 1);
  }
}

void stop_worker(struct gen *g) {
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
void maybe_retire(struct sv *v, struct gen *g) {
  if (g == v->current || g == v->loading || g->sessions || g->restores) return;
  if (g->pid) {
    log_info("configuration generation %d has no sessions left; stopping "
             "worker %d",
             g->id, g->pid);
    kill(g->pid, SIGTERM);
    return; /* freed when it exits */
  }
  free_gen(v, g);
}

/* Points every listener of g at g's settings: sockets staged for it start
 * accepting, removed ones are closed, kept ones re-permissioned.  Returns
 * -1 if a socket could not be opened. */
static int activate(struct sv *v, struct gen *g) {
  int bad = 0;
  char err[PATH_MAX + 256];
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    if (l->restore) continue; /* keeps its own generation and socket */
    const struct listener_conf *c = conf_find_listener(g->conf, l->name);
    if (!c) {
      if (l->fd >= 0)
        log_info("listener %s removed; its %d live sessions keep running",
                 l->name, l->live);
      close_listener(v, l);
      continue;
    }
    int moved =
        l->fd >= 0 && (l->staged >= 0 || strcmp(l->bound_path, c->socket));
    if (moved) close_listener(v, l);
    l->conf = c;
    l->gen = g;
    err[0] = 0;
    if (l->staged >= 0) {
      install_listener(v, l, l->staged, l->staged_path);
      l->staged = -1;
      l->staged_path[0] = 0;
    } else if (l->fd >= 0 && apply_access(l, c, err, sizeof err) < 0) {
      log_error("%s", err);
      bad = 1;
    } else if (l->fd < 0 && !l->drained) {
      bad |= open_listener(v, l) < 0;
    }
  }
  return bad ? -1 : 0;
}

/* At start: every listener of g is bound (not yet accepting) and points at
 * g, so handed-over sessions find their generation. */
int point_listeners(struct sv *v, struct gen *g) {
  char err[PATH_MAX + 256];
  if (stage_all(v, g, err, sizeof err) < 0) {
    log_error("%s", err);
    return -1;
  }
  for (int i = 0; i < g->conf->n_listeners; i++) {
    struct sv_listener *l = find_listener(v, g->conf->listeners[i].name);
    l->conf = &g->conf->listeners[i];
    l->gen = g;
  }
  return 0;
}

/* Closes the sockets staged for g, a generation that will not serve (NULL:
 * every staged socket). */
void unstage(struct sv *v, const struct gen *g) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (l->staged >= 0 && (!g || l->staged_gen == g)) {
      close(l->staged);
      unlink(l->staged_path);
      l->staged = -1;
      l->staged_path[0] = 0;
    }
}

/* Forgets listeners that no generation has and nothing uses (added by a
 * reload that failed). */
static void prune_listeners(struct sv *v) {
  for (struct sv_listener **pp = &v->ls; *pp;) {
    struct sv_listener *l = *pp;
    int used =
        l->fd >= 0 || l->staged >= 0 || l->live || l->pending || l->restore;
    for (struct gen *g = v->gens; g && !used; g = g->next)
      used = conf_find_listener(g->conf, l->name) != NULL;
    if (used) {
      pp = &l->next;
      continue;
    }
    char n[96];
    notify_fdstore_remove(fdname('S', l->name, n, sizeof n));
    *pp = l->next;
    munmap(l->stats, sizeof *l->stats);
    close_if(l->stats_fd);
    free(l);
  }
}

/* Whether another listener accepts on path now (it is opened at the
 * switch, once that one has let it go). */
static int held_by_other(struct sv *v, const struct sv_listener *l,
                         const char *path) {
  for (struct sv_listener *o = v->ls; o; o = o->next)
    if (o != l && o->fd >= 0 && !strcmp(o->bound_path, path)) return 1;
  return 0;
}

/* Binds every socket g needs that is not open yet, without accepting on
 * it: g takes over only when all are open.  Returns -1 (nothing staged)
 * with the reason in err. */
int stage_all(struct sv *v, struct gen *g, char *err, size_t errlen) {
  for (int i = 0; i < g->conf->n_listeners; i++) {
    const struct listener_conf *c = &g->conf->listeners[i];
    struct sv_listener *l = find_listener(v, c->name);
    if (l->staged >= 0 && strcmp(l->staged_path, c->socket)) {
      snprintf(err, errlen,
               "listener %s: its socket %s still waits for the first worker; "
               "it cannot move before that worker is ready",
               c->name, l->staged_path);
      unstage(v, g);
      return -1;
    }
    if (l->staged >= 0 || (l->fd >= 0 && !strcmp(l->bound_path, c->socket)) ||
        held_by_other(v, l, c->socket))
      continue; /* one staged for the first worker carries over */
    err[0] = 0;
    int fd = bind_listener(c, err, errlen);
    if (fd < 0) {
      unstage(v, g);
      return -1;
    }
    l->staged = fd;
    snprintf(l->staged_path, sizeof l->staged_path, "%s", c->socket);
    l->staged_gen = g;
  }
  return 0;
}

static void worker_ready(struct sv *v, struct gen *g) {
  g->ready = 1;
  g->failed_starts = 0;
  int was_loading = g == v->loading;
  int first_ready = g == v->current && !g->ever_ready;
  if (g == v->current && !g->ever_ready &&
      activate(v, g) < 0) /* listeners accept once the worker is ready */
    log_error("some listeners could not be opened (see above)");
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
  restore_worker_ready(v, g); /* before the sessions on their listeners */
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
  if (was_loading || first_ready) reload_queued(v);
}

void on_worker_msg(struct sv *v, struct gen *g) {
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  while (g->ipc >= 0 && ipc_recv(g->ipc, &m, fds) > 0) {
    if (m.type == IPC_PIN && m.name[0]) { /* a per-restore listener's */
      restore_pin(v, g, &m, fds);
    } else if (m.type == IPC_PIN) {
      genpin_add(g, fds[0], fds[1]);
      fds[0] = fds[1] = -1;
    }
    if (m.type == IPC_RESTORE_OK || m.type == IPC_RESTORE_ERR ||
        m.type == IPC_SOURCE_ERROR)
      restore_worker_msg(v, g, &m, fds);
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
  uint64_t lived = clock_mono_ns() - g->started;
  g->restart_delay = lived > 10000000000ull || !g->restart_delay
                         ? g->conf->worker_restart_delay_ns
                         : g->restart_delay * 2;
  if (g->restart_delay > 5000000000ull) g->restart_delay = 5000000000ull;
  g->restart_at = clock_mono_ns() + g->restart_delay;
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (l->gen == g)
      __atomic_fetch_add(&l->stats->worker_restarts, 1, __ATOMIC_RELAXED);
  log_error("worker %d died (%s %d); restarting it in %llu ms, its %d "
            "sessions kept",
            g->pid, WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
            (unsigned long long)(g->restart_delay / 1000000), g->sessions);
}

/* The VM of s is killed, never left to fault in bytes nobody checked. */
void kill_session_vm(struct sv_session *s) {
  if (peer_signal(s->fds[2], s->shm->pid, SIGKILL) < 0 && errno != ESRCH)
    sv_log(LOG_ERROR, s, ": could not kill it: %s", strerror(errno));
}

/* g's workers keep failing to start: its sessions end per their
 * listener's on_source_error ("hang" keeps them blocked, and retries go
 * on at the longest delay). */
static void give_up_sessions(struct sv *v, struct gen *g) {
  int ended = 0, kept = 0;
  for (struct sv_session *s = v->sessions, *n; s; s = n) {
    n = s->next;
    if (s->gen != g) continue;
    const struct listener_conf *c = conf_find_listener(g->conf, s->l->name);
    if (c && c->on_source_error == ON_ERROR_HANG) {
      kept++;
      continue;
    }
    kill_session_vm(s);
    ended++;
  }
  log_error("configuration generation %d: %d workers in a row failed to "
            "start; killing %d VMs and leaving %d blocked (on_source_error)",
            g->id, g->failed_starts, ended, kept);
  for (struct sv_session *s = v->sessions, *n; s; s = n) {
    n = s->next;
    if (s->gen == g &&
        !(conf_find_listener(g->conf, s->l->name) &&
          conf_find_listener(g->conf, s->l->name)->on_source_error ==
              ON_ERROR_HANG))
      end_session(v, s->id, END_FAILED);
  }
}

static int gen_alive(struct sv *v, const struct gen *g) {
  for (struct gen *o = v->gens; o; o = o->next)
    if (o == g) return 1;
  return 0;
}

/* A reload whose worker never got ready: the running generation stays. */
static void reload_failed(struct sv *v, struct gen *g) {
  log_error("reload failed; keeping configuration generation %d",
            v->current->id);
  v->loading = NULL;
  unstage(v, g);
  free_gen(v, g);
  prune_listeners(v);
  notify_ready(); /* RELOADING=1 is over: still serving */
  reload_queued(v);
}

static void worker_exited(struct sv *v, struct gen *g, int status) {
  on_worker_msg(v, g); /* what it said before dying still counts */
  int was_ready = g->ready;
  ep_del(v, g->ipc);
  close(g->ipc);
  g->ipc = -1;
  g->ready = 0;
  if (v->stopping) return;
  restore_worker_died(v, g);
  if (!was_ready) g->failed_starts++;
  if (!g->ever_ready) {
    log_error("worker failed to start (%s %d)",
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    g->pid = 0;
    if (g == v->loading) {
      reload_failed(v, g);
      return;
    }
    if (g == v->current && !v->sessions) {
      v->failed = 1;
      return;
    }
  }
  if (g != v->current && !g->sessions && !g->restores) {
    g->pid = 0;
    free_gen(v, g);
    return;
  }
  if (g->failed_starts >= MAX_FAILED_STARTS && g->sessions) {
    g->pid = 0;
    give_up_sessions(v, g);
    if (!gen_alive(v, g)) return; /* retired with its last session */
  }
  schedule_restart(v, g, status);
  g->pid = 0;
}

void on_child(struct sv *v) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    struct gen *g = gen_by_pid(v, pid);
    if (g) worker_exited(v, g, status);
  }
}

/* Reads the file into a new generation whose sockets are all bound before
 * its worker starts.  A reload asked for while one loads runs after it,
 * with the file as it is then.  msg says which generation it got. */
int reload(struct sv *v, char *msg, size_t len) {
  /* A first worker still starting (not yet failed) is waited for. */
  struct gen *g0 = v->current;
  struct gen *busy = v->loading ? v->loading
                     : !g0->ever_ready && g0->pid && !g0->failed_starts ? g0
                                                                        : NULL;
  if (busy) { /* its sockets are staged: one staging at a time */
    v->reload_again = 1;
    snprintf(msg, len,
             "generation %d is still loading; this reload runs once it is "
             "done, with the file as it is then",
             busy->id);
    log_info("reload: %s", msg);
    return 0;
  }
  const struct daemon_conf *cur = v->current->conf;
  if (!strcmp(cur->file, "command line")) {
    snprintf(msg, len, "started without a config file: nothing to reload");
    return -1;
  }
  struct daemon_conf *c = malloc(sizeof *c);
  if (!c) {
    snprintf(msg, len, "out of memory");
    return -1;
  }
  struct conf_err err;
  int bad = conf_load_file(c, cur->file, &err);
  if (bad) conf_err_text(&err, msg, len);
  if (bad || restore_name_clash(v, c, msg, len) < 0) {
    conf_free(c);
    free(c);
    return -1;
  }
  struct gen *g = new_gen(v, c);
  if (!g) {
    snprintf(msg, len, "cannot set up the new configuration");
    conf_free(c);
    free(c);
    return -1;
  }
  if (stage_all(v, g, msg, len) < 0) {
    v->next_gen--; /* never served: its number goes to the next one */
    free_gen(v, g);
    prune_listeners(v);
    return -1;
  }
  v->loading = g;
  notify_reloading();
  spawn_worker(v, g);
  log_info("reloading %s as configuration generation %d", c->file, g->id);
  snprintf(msg, len, "loading %s as configuration generation %d", c->file,
           g->id);
  return 0;
}

void reload_queued(struct sv *v) {
  char err[2048];
  if (!v->reload_again) return;
  v->reload_again = 0;
  if (reload(v, err, sizeof err) < 0) log_error("reload: %s", err);
}

void restart_due(struct sv *v) {
  uint64_t t = clock_mono_ns();
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->restart_at && t >= g->restart_at) {
      g->restart_at = 0;
      spawn_worker(v, g);
    }
}

/* The worker process: one serves every live configuration generation.
 * Starting it and sending it each generation (its pinned files, its
 * listeners' counters, its text), its answers, and restarting it when it
 * dies: every live generation is sent again, then their restores and
 * sessions.  A generation whose sources fail to start is tried again; after
 * MAX_FAILED_STARTS in a row its sessions end per on_source_error. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "selfexe.h"
#include "sv.h"

#define MAX_FAILED_STARTS 5
#define MAX_DELAY_NS 5000000000ull

void send_session(struct sv_session *s) {
  struct ipc_msg m = {.type = IPC_SESSION, .id = s->id, .code = s->gen->id};
  snprintf(m.name, sizeof m.name, "%s", s->l->name);
  if (ipc_send(s->gen->w->ipc, &m, s->fds, 4) < 0)
    sv_log(LOG_WARN, s, ": could not hand to the worker: %s", strerror(errno));
}

/* Its pins, its listeners' counters, then its text and file name. */
void send_gen(struct sv *v, struct gen *g) {
  g->retry_at = 0;
  if (v->w.ipc < 0) return; /* sent when the worker starts */
  struct ipc_msg pin = {.type = IPC_PIN, .id = (uint64_t)g->id};
  pinlist_send(&g->pins, v->w.ipc, &pin);
  for (int i = 0; i < g->conf->n_listeners; i++) {
    struct sv_listener *l = find_listener(v, g->conf->listeners[i].name);
    struct ipc_msg m = {.type = IPC_LISTENER, .id = (uint64_t)g->id};
    snprintf(m.name, sizeof m.name, "%s", l->name);
    ipc_send(v->w.ipc, &m, &l->stats_fd, 1);
  }
  int name = memfd_create("uffdkit-config-name", MFD_CLOEXEC);
  size_t len = strlen(g->conf->file);
  if (name >= 0 && write(name, g->conf->file, len) != (ssize_t)len) {
    close(name);
    name = -1;
  }
  struct ipc_msg m = {.type = IPC_GEN, .id = (uint64_t)g->id};
  int fds[2] = {g->config_fd, name};
  if (ipc_send(v->w.ipc, &m, fds, 2) < 0)
    log_warn("configuration generation %d: could not send it to the worker: "
             "%s",
             g->id, strerror(errno));
  close_if(name);
  g->sent = 1;
}

static void exec_worker(struct sv *v, int ipc_fd) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  int ipc = dup(ipc_fd); /* without CLOEXEC */
  char a_ipc[16];
  snprintf(a_ipc, sizeof a_ipc, "%d", ipc);
  char *argv[16] = {"uffdkit", "--worker", "--ipc-fd", a_ipc};
  int n = 4;
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

/* Whether g is still wanted: current, loading, or with sessions or
 * restores. */
static int wanted(const struct sv *v, const struct gen *g) {
  return g == v->current || g == v->loading || g->sessions || g->restores;
}

/* Starts the worker and sends it every live generation, oldest first (a
 * newer one shares the stacks of an older one). */
void spawn_worker(struct sv *v) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
    log_error("socketpair: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) exec_worker(v, sp[1]);
  close(sp[1]);
  if (pid < 0) {
    log_error("fork: %s", strerror(errno));
    close(sp[0]);
    return;
  }
  v->w.kind = K_WORKER;
  v->w.pid = pid;
  v->w.ipc = sp[0];
  v->w.started = clock_mono_ns();
  fcntl(v->w.ipc, F_SETFL, O_NONBLOCK);
  ep_add(v, v->w.ipc, EPOLLIN, &v->w);
  for (int last = 0;;) {
    struct gen *next = NULL;
    for (struct gen *g = v->gens; g; g = g->next)
      if (wanted(v, g) && g->id > last && (!next || g->id < next->id)) next = g;
    if (!next) break;
    send_gen(v, next);
    last = next->id;
  }
}

void stop_worker(struct sv *v) {
  pid_t pid = v->w.pid;
  if (!pid) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) { /* gone, or reaped */
      v->w.pid = 0;
      return;
    }
    usleep(50000);
  }
  log_warn("worker %d did not stop in 5 s; killing it", pid);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  v->w.pid = 0;
}

/* The VM of s is killed, never left to fault in bytes nobody checked. */
void kill_session_vm(struct sv_session *s) {
  if (peer_signal(s->fds[2], s->shm->pid, SIGKILL) < 0 && errno != ESRCH)
    sv_log(LOG_ERROR, s, ": could not kill it: %s", strerror(errno));
}

static int hangs(const struct gen *g, const struct sv_session *s) {
  const struct listener_conf *c = conf_find_listener(g->conf, s->l->name);
  if (s->l->restore) c = s->l->conf;
  return c && c->on_source_error == ON_ERROR_HANG;
}

/* g's sources keep failing to start: its sessions end per their
 * listener's on_source_error ("hang" keeps them blocked, and tries go on
 * at the longest delay). */
static void give_up_sessions(struct sv *v, struct gen *g) {
  int ended = 0, kept = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next) {
    if (s->gen != g) continue;
    if (hangs(g, s)) {
      kept++;
      continue;
    }
    kill_session_vm(s);
    ended++;
  }
  log_error("configuration generation %d: its sources failed to start %d "
            "times in a row; killing %d VMs and leaving %d blocked "
            "(on_source_error)",
            g->id, g->failed_starts, ended, kept);
  for (struct sv_session *s = v->sessions, *n; s; s = n) {
    n = s->next;
    if (s->gen == g && !hangs(g, s)) end_session(v, s->id, END_FAILED);
  }
}

static uint64_t backoff(uint64_t delay, uint64_t lived, uint64_t base) {
  /* Quick failures back off, up to 5 s; 10 s of life resets. */
  delay = lived > 10000000000ull || !delay ? base : delay * 2;
  return delay > MAX_DELAY_NS ? MAX_DELAY_NS : delay;
}

/* g failed to start (its sources, or the worker died building it).
 * Returns 0 if g is gone. */
static int gen_failed(struct sv *v, struct gen *g) {
  g->ready = g->sent = 0;
  g->failed_starts++;
  if (g == v->loading) {
    reload_failed(v, g);
    return 0;
  }
  if (g == v->current && !g->ever_ready && !v->sessions) {
    v->failed = 1; /* nothing to serve: the daemon exits */
    return 1;
  }
  if (g->failed_starts >= MAX_FAILED_STARTS && g->sessions) {
    give_up_sessions(v, g);
    if (!gen_live(v, g)) return 0; /* retired with its last session */
  }
  if (!wanted(v, g)) {
    maybe_retire(v, g);
    return 0;
  }
  g->retry_delay = backoff(g->retry_delay, 0, g->conf->worker_restart_delay_ns);
  g->retry_at = clock_mono_ns() + g->retry_delay;
  return 1;
}

static void on_gen_err(struct sv *v, struct gen *g, int why_fd) {
  char why[2048];
  ipc_why(why_fd, why, sizeof why, "its sources did not start");
  log_error("configuration generation %d could not start: %s", g->id, why);
  if (gen_failed(v, g) && g->retry_at)
    log_info("configuration generation %d: trying again in %llu ms", g->id,
             (unsigned long long)(g->retry_delay / 1000000));
}

void on_worker_msg(struct sv *v) {
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  while (v->w.ipc >= 0 && ipc_recv(v->w.ipc, &m, fds) > 0) {
    struct gen *g = gen_by_id(v, (uint32_t)m.id);
    if (m.type == IPC_PIN && m.name[0]) { /* a per-restore listener's */
      restore_pin(v, &m, fds);
    } else if (m.type == IPC_PIN && g) {
      pinlist_add(&g->pins, fds[0], fds[1]);
      fds[0] = fds[1] = -1;
    }
    if ((m.type == IPC_RESTORE_OK || m.type == IPC_RESTORE_ERR))
      for (struct restore *r = v->restores; r; r = r->next)
        if (!strncmp(r->id, m.name, sizeof m.name)) {
          restore_worker_msg(v, r->gen, &m, fds);
          break;
        }
    if (m.type == IPC_SOURCE_ERROR) restore_worker_msg(v, NULL, &m, fds);
    if (m.type == IPC_READY && g && g->sent) {
      g->failed_starts = 0;
      g->retry_delay = 0;
      gen_ready(v, g);
    } else if (m.type == IPC_GEN_ERR && g && g->sent) {
      on_gen_err(v, g, fds[0]);
    } else if (m.type == IPC_END) {
      end_session(v, m.id, m.code);
    }
    for (int i = 0; i < IPC_MAX_FDS; i++)
      close_if(fds[i]);
  }
}

static void schedule_restart(struct sv *v, int status) {
  uint64_t base = v->current->conf->worker_restart_delay_ns;
  v->w.restart_delay =
      backoff(v->w.restart_delay, clock_mono_ns() - v->w.started, base);
  v->w.restart_at = clock_mono_ns() + v->w.restart_delay;
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (l->gen)
      __atomic_fetch_add(&l->stats->worker_restarts, 1, __ATOMIC_RELAXED);
  int n = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    n++;
  log_error("worker %d died (%s %d); restarting it in %llu ms, its %d "
            "sessions kept",
            v->w.pid, WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
            (unsigned long long)(v->w.restart_delay / 1000000), n);
}

/* Every generation it was building failed; the others are sent again to
 * the next worker. */
static void worker_exited(struct sv *v, int status) {
  on_worker_msg(v); /* what it said before dying still counts */
  ep_del(v, v->w.ipc);
  close(v->w.ipc);
  v->w.ipc = -1;
  if (v->stopping) return;
  restore_worker_died(v); /* its restores still starting count a death */
  for (struct gen *g = v->gens, *n; g; g = n) {
    n = g->next;
    if (g->sent && !g->ready) {
      log_error("the worker died before configuration generation %d was "
                "ready",
                g->id);
      if (!gen_failed(v, g)) continue; /* retired */
    }
    g->ready = g->sent = 0;
    g->retry_at = 0;
  }
  if (v->failed) {
    v->w.pid = 0;
    return;
  }
  schedule_restart(v, status);
  v->w.pid = 0;
}

void on_child(struct sv *v) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
    if (pid == v->w.pid) worker_exited(v, status);
}

void restart_due(struct sv *v) {
  uint64_t t = clock_mono_ns();
  if (v->w.restart_at && t >= v->w.restart_at) {
    v->w.restart_at = 0;
    spawn_worker(v);
  }
  for (struct gen *g = v->gens; g; g = g->next)
    if (g->retry_at && t >= g->retry_at) send_gen(v, g);
}

uint64_t worker_next_due(const struct sv *v) {
  uint64_t next = v->w.restart_at ? v->w.restart_at : UINT64_MAX;
  for (const struct gen *g = v->gens; g; g = g->next)
    if (g->retry_at && g->retry_at < next) next = g->retry_at;
  return next;
}

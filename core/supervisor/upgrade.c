/* SIGUSR2: checking the next binary, handing every descriptor to it, and
 * adopting what the previous process handed over. */
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

static int take_handed(struct handed *h, int n, char kind, const char *what) {
  char want[96];
  return handover_take(h, n, fdname(kind, what, want, sizeof want));
}

/* Generations handed over ("T-<id>": their exact config text); the
 * highest becomes current.  Returns it, or NULL if none was handed. */
struct gen *adopt_gens(struct sv *v, struct handed *h, int n) {
  struct gen *cur = NULL;
  const char *name =
      v->opts->config_path ? v->opts->config_path : "command line";
  for (int i = 0; i < n; i++) {
    if (h[i].fd < 0 || h[i].name[0] != 'T' || h[i].name[1] != '-') continue;
    struct daemon_conf *c = malloc(sizeof *c);
    struct conf_err err;
    if (!c) {
      log_error("configuration generation %s handed over: out of memory",
                h[i].name + 2);
      continue;
    }
    if (conf_load_fd(c, h[i].fd, name, &err) < 0) {
      log_error("configuration generation %s handed over is unreadable: %s",
                h[i].name + 2, conf_err_str(&err));
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
void adopt_stats(struct sv *v, struct handed *h, int n) {
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && h[i].name[0] == 'S' && h[i].name[1] == '-' &&
        listener_record(v, h[i].name + 2, h[i].fd))
      h[i].fd = -1;
}

/* Listening sockets handed over, kept where the config still has them. */
void adopt_listeners(struct sv *v, const struct daemon_conf *c,
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
    l->staged = fd; /* accepted on once the worker is ready */
    snprintf(l->staged_path, sizeof l->staged_path, "%s", lc->socket);
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
  if (!add_session(v, l, fds, shm, len)) {
    /* Its uffd closed, the VM would fault in zeros: it is killed. */
    log_error("session %s handed over: out of memory; killing the VM", id);
    peer_signal(fds[2], shm->pid, SIGKILL);
    munmap(shm, len);
    for (int k = 0; k < 4; k++)
      close_if(fds[k]);
  }
}

void adopt_sessions(struct sv *v, struct handed *h, int n) {
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

/* Adds fd (if open) under name; *n is -1 once memory ran out. */
static void add_named(struct handed **h, int *n, int fd, const char *name) {
  if (fd < 0 || *n < 0) return;
  struct handed *more = realloc(*h, (size_t)(*n + 1) * sizeof **h);
  if (!more) {
    *n = -1; /* out of memory: the caller hands nothing over */
    return;
  }
  *h = more;
  (*h)[*n].fd = fd;
  snprintf((*h)[*n].name, sizeof(*h)[*n].name, "%s", name);
  ++*n;
}

static void add_handed(struct handed **h, int *n, int fd, char kind,
                       const char *what) {
  char name[96];
  add_named(h, n, fd, fdname(kind, what, name, sizeof name));
}

/* Each pin under the names pinlist_names gives it. */
static void hand_pins(struct handed **h, int *n, const struct pinlist *l) {
  for (int i = 0; i < l->n && *n >= 0; i++) {
    char f[96], m[96];
    pinlist_names(l, i, f, m);
    add_named(h, n, l->pins[i].fd, f);
    add_named(h, n, l->pins[i].meta, m);
  }
}

/* SIGUSR2: the binary now at our path is checked first; only then are the
 * workers stopped (sessions stay, as in a worker crash) and it is
 * re-executed, with every descriptor handed over. */
void upgrade(struct sv *v) {
  char exe[PATH_MAX], why[PATH_MAX + 128];
  int fd = selfexe_successor(exe, sizeof exe, why, sizeof why);
  if (fd < 0) {
    log_error("upgrade refused: %s; nothing was stopped, this binary "
              "carries on",
              why);
    return;
  }
  struct handed *h = NULL;
  int n = 0;
  if (v->loading) /* that reload is dropped: the file is read again later */
    unstage(v, v->loading);
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    add_handed(&h, &n, l->fd >= 0 ? l->fd : l->staged, 'L', l->name);
    add_handed(&h, &n, l->stats_fd, 'S', l->name);
  }
  for (struct restore *r = v->restores; r; r = r->next) {
    add_handed(&h, &n, r->text_fd, 'R', r->id);
    hand_pins(&h, &n, &r->pins);
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
    if (g == v->current || g->sessions || g->restores) {
      char id[16];
      snprintf(id, sizeof id, "%d", g->id);
      add_handed(&h, &n, g->config_fd, 'T', id);
      hand_pins(&h, &n, &g->pins);
    }
  if (n < 0) {
    log_error("upgrade refused: out of memory; nothing was stopped, this "
              "binary carries on");
    close(fd);
    free(h);
    return;
  }
  log_info("upgrading: re-executing %s, handing over %d descriptors", exe, n);
  stop_worker(v);
  handover_exec(fd, v->opts->argv, h, n);
  log_error("upgrade: exec %s failed: %s; this binary carries on", exe,
            strerror(errno));
  close(fd);
  free(h);
  spawn_worker(v);
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
void upgrade_when_idle(struct sv *v) {
  set_accepting(v, 0);
  if (restore_starting(v)) return; /* a serve waits for its source */
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

/* Configuration generations: staging a generation's sockets until the
 * worker has started its sources, retiring generations nobody uses, and
 * reloads (coalesced while one is loading).  The worker process serving
 * them is workerproc.c. */
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
  g->id = id ? id : ++v->next_gen;
  if (g->id > v->next_gen) v->next_gen = g->id;
  g->conf = conf;
  g->w = &v->w;
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
  char gid[16], n[96], what[48];
  snprintf(gid, sizeof gid, "%d", g->id);
  snprintf(what, sizeof what, "configuration generation %d", g->id);
  pinlist_init(&g->pins, 'F', 'N', gid, what);
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
  pinlist_free(&g->pins);
  conf_free(g->conf);
  free(g->conf);
  /* A caller up the stack may still hold g. */
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

/* A generation nobody needs any more: the worker is told to free it (its
 * stacks go once no generation shares them). */
void maybe_retire(struct sv *v, struct gen *g) {
  if (g == v->current || g == v->loading || g->sessions || g->restores) return;
  log_info("configuration generation %d has no sessions left; retiring it",
           g->id);
  if (g->sent && v->w.ipc >= 0) {
    struct ipc_msg m = {.type = IPC_UNGEN, .id = (uint64_t)g->id};
    ipc_send(v->w.ipc, &m, NULL, 0);
  }
  free_gen(v, g);
}

int gen_live(const struct sv *v, const struct gen *g) {
  for (const struct gen *o = v->gens; o; o = o->next)
    if (o == g) return 1;
  return 0;
}

/* The worker has started g's sources: its listeners accept (a reload's
 * take over), its restores and sessions go to the worker. */
void gen_ready(struct sv *v, struct gen *g) {
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
  if (g->ever_ready || n)
    log_info("worker %d ready; handed back %d live sessions (configuration "
             "generation %d)",
             v->w.pid, n, g->id);
  else
    log_info("worker %d ready (configuration generation %d)", v->w.pid, g->id);
  if (g == v->current && !g->ever_ready) notify_ready();
  g->ever_ready = 1;
  notify_status("serving: generation %d, %d live sessions", v->current->id,
                v->current->sessions);
  if (was_loading || first_ready) reload_queued(v);
}

/* A reload whose sources did not start: the running generation stays. */
void reload_failed(struct sv *v, struct gen *g) {
  log_error("reload failed; keeping configuration generation %d",
            v->current->id);
  v->loading = NULL;
  unstage(v, g);
  free_gen(v, g);
  prune_listeners(v);
  notify_ready(); /* RELOADING=1 is over: still serving */
  reload_queued(v);
}

/* Reads the file into a new generation whose sockets are all bound before
 * its worker starts.  A reload asked for while one loads runs after it,
 * with the file as it is then.  msg says which generation it got. */
int reload(struct sv *v, char *msg, size_t len) {
  /* A first worker still starting (not yet failed) is waited for. */
  struct gen *g0 = v->current;
  struct gen *busy = v->loading ? v->loading
                     : !g0->ever_ready && g0->sent && !g0->failed_starts ? g0
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
  send_gen(v, g);
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

#include "wgen.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conferr.h"
#include "helpers.h"
#include "log.h"
#include "mem.h"
#include "stack.h"
#include "stacks.h"

enum wgen_state { G_COLLECTING, G_QUEUED, G_BUILDING, G_BUILT };

struct stats_fd {
  char name[64];
  int fd;
};

struct wgen {
  int id;
  enum wgen_state state;
  int removed;
  char file[PATH_MAX];
  int text_fd;
  struct wconf *conf;
  struct pinset *pins;
  struct worker_listener *wl;
  int n;
  struct stats_fd *sfd; /* listeners' counters, until built */
  int nsfd;
  int ok;         /* the build's result */
  char why[2048]; /* the build's error */
  struct wgen *next;
};

static struct {
  int ipc;
  const char *plugin_dir;
  int level_fixed, json_fixed; /* given on the command line */
  int newest_id;               /* whose log settings apply */
  int done;                    /* eventfd: a build has finished */
  struct wgen *gens;
  struct wgen *building;
  pthread_t thread;
} G = {.ipc = -1, .done = -1};

void wgen_init(int ipc, const char *plugin_dir, int level_fixed,
               int json_fixed) {
  G.ipc = ipc;
  G.plugin_dir = plugin_dir;
  G.level_fixed = level_fixed;
  G.json_fixed = json_fixed;
  G.done = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int wgen_event_fd(void) {
  return G.done;
}

static struct wgen *by_id(int id, int built) {
  for (struct wgen *g = G.gens; g; g = g->next)
    if (g->id == id && !g->removed && (!built || g->state == G_BUILT)) return g;
  return NULL;
}

static struct wgen *newest(void) {
  struct wgen *n = NULL;
  for (struct wgen *g = G.gens; g; g = g->next)
    if (g->state == G_BUILT && !g->removed && (!n || g->id > n->id)) n = g;
  return n;
}

/* The record gathering what the supervisor sends for generation id. */
static struct wgen *collecting(int id) {
  for (struct wgen *g = G.gens; g; g = g->next)
    if (g->id == id && g->state == G_COLLECTING) return g;
  struct wgen *g = xcalloc(1, sizeof *g);
  g->id = id;
  g->text_fd = -1;
  g->pins = pinset_new(id, G.ipc);
  if (!g->pins) abort();
  g->next = G.gens;
  G.gens = g;
  return g;
}

static const char *dir_of(const struct wgen *g) {
  return G.plugin_dir ? G.plugin_dir : g->conf->c.plugin_dir;
}

static int stats_fd_of(const struct wgen *g, const char *name) {
  for (int i = 0; i < g->nsfd; i++)
    if (!strcmp(g->sfd[i].name, name)) return g->sfd[i].fd;
  return -1;
}

static void release_listeners(struct wgen *g) {
  for (int i = 0; i < g->n; i++)
    wstack_put(g->wl[i].ws);
  free(g->wl);
  g->wl = NULL;
  g->n = 0;
}

/* On the build thread: each listener's stack (shared where unchanged).
 * 1, or 0 with why. */
static int build(struct wgen *g) {
  g->n = g->conf->c.n_listeners;
  g->wl = xcalloc((size_t)(g->n ? g->n : 1), sizeof *g->wl);
  int shared = 0, built = 0;
  for (int i = 0; i < g->n; i++) {
    struct worker_listener *wl = &g->wl[i];
    wl->conf = &g->conf->c.listeners[i];
    int was_shared = 0;
    struct conf_err e;
    wl->ws = wstack_get(g->conf, wl->conf, dir_of(g), g->pins,
                        stats_fd_of(g, wl->conf->name), &was_shared, &e);
    if (!wl->ws) {
      conf_err_text(&e, g->why, sizeof g->why);
      g->n = i;
      release_listeners(g);
      return 0;
    }
    wl->stack = wl->ws->stack;
    wl->pool = wl->ws->pool;
    wl->stats = wl->ws->stats;
    shared += was_shared;
    built += !was_shared;
    if (was_shared)
      log_info("listener %s: source unchanged; keeps its stack and caches",
               wl->conf->name);
  }
  log_info("configuration generation %d: %d listeners, %d stacks built, %d "
           "kept",
           g->id, g->n, built, shared);
  return 1;
}

static void *build_thread(void *arg) {
  struct wgen *g = arg;
  g->ok = build(g);
  uint64_t one = 1;
  if (write(G.done, &one, sizeof one) < 0)
    log_warn("build eventfd: %s", strerror(errno));
  return NULL;
}

static void start_next(void) {
  if (G.building) return;
  struct wgen *next = NULL;
  for (struct wgen *g = G.gens; g; g = g->next)
    if (g->state == G_QUEUED && (!next || g->id < next->id)) next = g;
  if (!next) return;
  next->state = G_BUILDING;
  G.building = next;
  if (pthread_create(&G.thread, NULL, build_thread, next) != 0) {
    log_error("cannot start a thread to build generation %d", next->id);
    next->ok = 0;
    snprintf(next->why, sizeof next->why, "cannot start a thread");
    uint64_t one = 1;
    if (write(G.done, &one, sizeof one) < 0) log_warn("build eventfd");
    G.thread = pthread_self();
  }
}

static void unlink_gen(struct wgen *g) {
  for (struct wgen **pp = &G.gens; *pp; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
}

/* Generations being freed on threads of their own, waited for at exit. */
/* Threads freeing generations aside, joined when they end. */
static struct helpers F = HELPERS_INIT;

static void destroy_gen(struct wgen *g) {
  release_listeners(g);
  wconf_put(g->conf);
  pinset_free(g->pins);
  for (int i = 0; i < g->nsfd; i++)
    close(g->sfd[i].fd);
  free(g->sfd);
  if (g->text_fd >= 0) close(g->text_fd);
  free(g);
}

static void free_gen(struct wgen *g) {
  unlink_gen(g);
  destroy_gen(g);
}

static void reply(const struct wgen *g) {
  struct ipc_msg m = {.type = g->ok ? IPC_READY : IPC_GEN_ERR,
                      .id = (uint64_t)g->id};
  if (ipc_send_why(G.ipc, &m, g->ok ? NULL : g->why) < 0)
    log_warn("generation %d: cannot answer the supervisor", g->id);
}

/* The newest generation's log level and format, before its sources log. */
static void apply_log(const struct wgen *g) {
  if (g->id < G.newest_id) return;
  G.newest_id = g->id;
  if (!G.level_fixed) log_set_level(g->conf->c.log_level);
  if (!G.json_fixed) log_set_json(!strcmp(g->conf->c.log_format, "json"));
}

void wgen_built(void) {
  uint64_t v;
  if (read(G.done, &v, sizeof v) < 0 || !G.building) return;
  struct wgen *g = G.building;
  if (!pthread_equal(G.thread, pthread_self())) pthread_join(G.thread, NULL);
  G.building = NULL;
  for (int i = 0; i < g->nsfd; i++)
    close(g->sfd[i].fd);
  g->nsfd = 0;
  close(g->text_fd);
  g->text_fd = -1;
  if (!g->ok) log_error("configuration generation %d: %s", g->id, g->why);
  reply(g);
  if (g->ok) {
    g->state = G_BUILT;
  } else {
    free_gen(g);
  }
  start_next();
}

static void add_stats_fd(struct wgen *g, const char *name, int fd) {
  g->sfd = xrealloc(g->sfd, (size_t)(g->nsfd + 1), sizeof *g->sfd);
  snprintf(g->sfd[g->nsfd].name, sizeof g->sfd[g->nsfd].name, "%.63s", name);
  g->sfd[g->nsfd++].fd = fd;
}

/* The file name the generation's messages give, from a memfd. */
static void read_name(struct wgen *g, int fd) {
  ssize_t n = fd >= 0 ? pread(fd, g->file, sizeof g->file - 1, 0) : -1;
  g->file[n > 0 ? n : 0] = 0;
  if (n <= 0) snprintf(g->file, sizeof g->file, "generation %d", g->id);
}

/* Loads g's text (fds: {text, file name}; taken) and queues its build, or
 * answers why it cannot load. */
static void queue(struct wgen *g, int fds[IPC_MAX_FDS]) {
  g->text_fd = fds[0];
  fds[0] = -1;
  read_name(g, fds[1]);
  g->conf = xcalloc(1, sizeof *g->conf);
  g->conf->refs = 1;
  struct conf_err e;
  if (conf_load_fd(&g->conf->c, g->text_fd, g->file, &e) < 0) {
    conf_err_text(&e, g->why, sizeof g->why);
    log_error("configuration generation %d: %s", g->id, g->why);
    reply(g);
    free_gen(g);
    return;
  }
  apply_log(g);
  g->state = G_QUEUED;
  start_next();
}

void wgen_msg(const struct ipc_msg *m, int fds[IPC_MAX_FDS]) {
  int id = (int)m->id;
  char name[sizeof m->name + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof m->name, m->name);
  if (m->type == IPC_PIN) {
    pinset_adopt(collecting(id)->pins, fds[0], fds[1]);
    fds[0] = fds[1] = -1;
  } else if (m->type == IPC_LISTENER && fds[0] >= 0) {
    add_stats_fd(collecting(id), name, fds[0]);
    fds[0] = -1;
  } else if (m->type == IPC_GEN && fds[0] >= 0) {
    queue(collecting(id), fds);
  } else if (m->type == IPC_UNGEN) {
    for (struct wgen *g = G.gens; g; g = g->next)
      if (g->id == id) g->removed = 1;
  }
  for (int i = 0; i < IPC_MAX_FDS; i++)
    if (fds[i] >= 0) close(fds[i]);
}

struct worker_listener *wgen_listener(int gen, const char *name) {
  struct wgen *g = by_id(gen, 1);
  for (int i = 0; g && i < g->n; i++)
    if (!strncmp(g->wl[i].conf->name, name, 63)) return &g->wl[i];
  return NULL;
}

struct pinset *wgen_pins(int gen) {
  struct wgen *g = by_id(gen, 1);
  if (!g) g = newest();
  return g ? g->pins : NULL;
}

const char *wgen_plugin_dir(int gen) {
  struct wgen *g = by_id(gen, 1);
  if (!g) g = newest();
  return g ? dir_of(g) : G.plugin_dir;
}

static void *free_thread(void *arg) {
  destroy_gen(arg);
  return NULL;
}

/* Freeing a generation can take long (closing the last descriptor of a
 * replaced file drops its page cache): not on the thread that starts
 * sessions. */
static void free_aside(struct wgen *g) {
  unlink_gen(g);
  g->next = NULL;
  if (helpers_start(&F, free_thread, g) != 0) destroy_gen(g);
}

void wgen_sweep(wgen_used_fn used) {
  for (struct wgen *g = G.gens, *n; g; g = n) {
    n = g->next;
    if (!g->removed || g->state == G_BUILDING || g->state == G_QUEUED) continue;
    int busy = 0;
    for (int i = 0; i < g->n && !busy; i++)
      busy = used(&g->wl[i]);
    if (!busy) free_aside(g);
  }
}

void wgen_free_all(void) {
  if (G.building && !pthread_equal(G.thread, pthread_self()))
    pthread_join(G.thread, NULL);
  G.building = NULL;
  while (G.gens)
    free_gen(G.gens);
  helpers_join_all(&F);
  if (G.done >= 0) close(G.done);
  G.done = -1;
}

#include "wrestore.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "log.h"
#include "pinned.h"
#include "pool.h"
#include "stack.h"

/* A session handed over while its restore's source was still starting. */
struct waiting {
  struct ipc_msg m;
  int fds[4];
  struct waiting *next;
};

struct wrestore {
  struct worker_listener wl;
  struct daemon_conf conf; /* the expanded listener, its only one */
  char name[64];
  uint32_t serial; /* the supervisor's, in every answer */
  int removed;     /* freed once no session uses it */
  /* Its source starts on a starter thread of its own, so one that takes
   * long (a remote origin) delays no other restore; the loop finishes it. */
  int building;
  int stats_fd, text_fd;
  char *plugin_dir;    /* a copy: its generation may retire meanwhile */
  struct pinset *pins; /* its files, its own: freed when it is removed */
  char err[2048];      /* why the build failed, or "" */
  struct waiting *waiting;
  struct wrestore *next;
  struct wrestore *done_next;
  struct wrestore *queue_next; /* waiting for a starter */
};

static struct wrestore *restores;

/* Pins a former worker reported for a restore, adopted before the restore
 * itself arrives (IPC_PIN, then IPC_RESTORE); freed by its IPC_UNRESTORE
 * if it never comes. */
struct adopted {
  char name[64];
  struct pinset *pins;
  struct adopted *next;
};
static struct adopted *adopted;

static struct pinset *adopted_take(const char *name) {
  for (struct adopted **pp = &adopted; *pp; pp = &(*pp)->next)
    if (!strcmp((*pp)->name, name)) {
      struct adopted *a = *pp;
      struct pinset *s = a->pins;
      *pp = a->next;
      free(a);
      return s;
    }
  return NULL;
}

static void adopt(int ipc, const char *name, uint32_t serial, int fd,
                  int meta) {
  struct adopted *a;
  for (a = adopted; a && strcmp(a->name, name); a = a->next)
    ;
  if (!a && (a = calloc(1, sizeof *a))) {
    snprintf(a->name, sizeof a->name, "%.63s", name);
    a->pins = pinset_new_for(a->name, serial, ipc);
    a->next = adopted;
    adopted = a;
  }
  if (a && a->pins) {
    pinset_adopt(a->pins, fd, meta); /* takes both */
  } else {
    if (fd >= 0) close(fd);
    if (meta >= 0) close(meta);
  }
}

/* Starter threads build restores' stacks.  One is started only when none
 * is idle (a start that hangs keeps its thread, never another restore's),
 * and up to STARTERS_IDLE stay once done, so a serve usually costs no
 * thread creation. */
#define STARTERS_IDLE 4
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;    /* a restore queued, or stop */
  struct wrestore *queue; /* to build, in no particular order */
  struct wrestore *done;  /* built, for the loop to finish */
  int idle, queued, stop;
  struct helpers threads; /* the starters, joined when they end */
  int efd;
} B = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .threads = HELPERS_INIT,
       .efd = -1};

static void reply(int ipc, const char *name, uint32_t serial, const char *why) {
  struct ipc_msg m = {.type = why ? IPC_RESTORE_ERR : IPC_RESTORE_OK,
                      .code = (int32_t)serial};
  snprintf(m.name, sizeof m.name, "%s", name);
  if (ipc_send_why(ipc, &m, why) < 0)
    log_warn("restore %s: cannot answer", name);
}

static void drop_pins(struct wrestore *r) {
  pinset_free(r->pins); /* its stack keeps its own descriptors */
  r->pins = NULL;
}

static void destroy(struct wrestore *r) {
  drop_pins(r);
  free(r->plugin_dir);
  pool_free(r->wl.pool);
  stack_destroy(r->wl.stack);
  if (r->wl.stats) munmap(r->wl.stats, sizeof *r->wl.stats);
  if (r->wl.conf) conf_free(&r->conf);
  if (r->stats_fd >= 0) close(r->stats_fd);
  if (r->text_fd >= 0) close(r->text_fd);
  free(r);
}

/* Builds r's listener from its text; 0, or -1 with why in r->err. */
static int build(struct wrestore *r) {
  char what[96];
  snprintf(what, sizeof what, "restore %s", r->name);
  struct conf_err e;
  int bad = conf_load_fd(&r->conf, r->text_fd, what, &e) < 0;
  if (!bad &&
      (r->conf.n_listeners != 1 || strcmp(r->conf.listeners[0].name, r->name)))
    bad = conf_err_at(&e, what, -1, 0, "not one listener");
  if (bad) {
    conf_free(&r->conf);
  } else {
    r->wl.conf = &r->conf.listeners[0];
    r->wl.stats = listener_stats_map(r->stats_fd);
    if (!r->wl.stats) bad = conf_err_at(&e, what, -1, 0, "no counters");
  }
  if (!bad) {
    pinned_scope(r->pins, NULL); /* its files are its own, dropped with it */
    bad = worker_listener_build(&r->wl, &r->conf, r->plugin_dir, &e);
    pinned_scope(NULL, NULL);
  }
  if (bad) conf_err_text(&e, r->err, sizeof r->err);
  return bad ? -1 : 0;
}

static void *starter(void *arg) {
  (void)arg;
  pthread_mutex_lock(&B.lock);
  for (;;) {
    B.idle++;
    while (!B.queue && !B.stop)
      pthread_cond_wait(&B.cond, &B.lock);
    B.idle--;
    struct wrestore *r = B.queue;
    if (!r) break; /* stop */
    B.queue = r->queue_next;
    B.queued--;
    pthread_mutex_unlock(&B.lock);
    build(r);
    pthread_mutex_lock(&B.lock);
    r->done_next = B.done;
    B.done = r;
    uint64_t one = 1;
    if (write(B.efd, &one, sizeof one) < 0)
      log_warn("restore %s: cannot wake the loop: %s", r->name,
               strerror(errno));
    if (B.idle >= STARTERS_IDLE) break;
  }
  pthread_mutex_unlock(&B.lock);
  return NULL;
}

/* Queues r for a starter, starting one unless one is idle for it.  0, or
 * -1. */
static int start_build(struct wrestore *r) {
  int rc = 0;
  pthread_mutex_lock(&B.lock);
  if (B.idle <= B.queued) rc = helpers_start(&B.threads, starter, NULL);
  if (rc == 0) {
    r->queue_next = B.queue;
    B.queue = r;
    B.queued++;
    pthread_cond_signal(&B.cond);
  }
  pthread_mutex_unlock(&B.lock);
  return rc ? -1 : 0;
}

/* Ends the idle starters (none is building: the worker is stopping). */
static void stop_starters(void) {
  pthread_mutex_lock(&B.lock);
  B.stop = 1;
  pthread_cond_broadcast(&B.cond);
  pthread_mutex_unlock(&B.lock);
  helpers_join_all(&B.threads);
}

static struct wrestore *by_name(const char *name) {
  for (struct wrestore *r = restores; r; r = r->next)
    if (!r->removed && !strcmp(r->name, name)) return r;
  return NULL;
}

static void add(int ipc, const char *plugin_dir, const char *name,
                uint32_t serial, int fds[IPC_MAX_FDS]) {
  struct pinset *pins = adopted_take(name);
  struct wrestore *known = by_name(name);
  if (known) {
    pinset_free(pins);
    known->serial = serial;
    if (!known->building) reply(ipc, name, serial, NULL);
    return; /* one building answers once built */
  }
  struct wrestore *r = calloc(1, sizeof *r);
  if (!r) {
    reply(ipc, name, serial, "out of memory");
    return;
  }
  snprintf(r->name, sizeof r->name, "%.63s", name);
  r->serial = serial;
  r->stats_fd = fds[0];
  r->text_fd = fds[1];
  fds[0] = fds[1] = -1;
  r->plugin_dir = plugin_dir ? strdup(plugin_dir) : NULL;
  r->pins = pins ? pins : pinset_new_for(r->name, serial, ipc);
  r->building = 1;
  if (r->stats_fd < 0 || r->text_fd < 0 || (plugin_dir && !r->plugin_dir) ||
      start_build(r) < 0) {
    reply(ipc, name, serial, "cannot start the source's thread");
    r->wl.conf = NULL;
    destroy(r);
    return;
  }
  r->next = restores;
  restores = r;
}

int wrestore_fd(void) {
  if (B.efd < 0) B.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return B.efd;
}

/* r's build is over: answer, then start or refuse its waiting sessions. */
static void finish(int ipc, struct wrestore *r, wrestore_start_fn start) {
  r->building = 0;
  close(r->text_fd);
  close(r->stats_fd);
  r->text_fd = r->stats_fd = -1;
  int ok = !r->err[0] && !r->removed;
  if (r->removed) { /* gone meanwhile: nobody waits for the answer */
    drop_pins(r);
  } else if (ok) {
    reply(ipc, r->name, r->serial, NULL);
  } else {
    log_error("%s", r->err);
    reply(ipc, r->name, r->serial, r->err);
    drop_pins(r);
    r->removed = 1; /* swept: no session can use it */
  }
  while (r->waiting) {
    struct waiting *w = r->waiting;
    r->waiting = w->next;
    start(&w->m, w->fds, ok ? &r->wl : NULL);
    free(w);
  }
}

void wrestore_done(int ipc, wrestore_start_fn start, wrestore_used_fn used) {
  uint64_t v;
  if (read(B.efd, &v, sizeof v) < 0 && errno != EAGAIN)
    log_warn("restore builds: %s", strerror(errno));
  pthread_mutex_lock(&B.lock);
  struct wrestore *d = B.done;
  B.done = NULL;
  pthread_mutex_unlock(&B.lock);
  while (d) {
    struct wrestore *r = d;
    d = r->done_next;
    finish(ipc, r, start);
  }
  wrestore_sweep(used);
}

int wrestore_defer(const struct ipc_msg *m, int fds[4]) {
  char name[sizeof m->name + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof m->name, m->name);
  struct wrestore *r = by_name(name);
  if (!r || !r->building) return 0;
  struct waiting *w = calloc(1, sizeof *w);
  if (!w) return 0;
  w->m = *m;
  memcpy(w->fds, fds, sizeof w->fds);
  w->next = r->waiting;
  r->waiting = w;
  return 1;
}

void wrestore_msg(int ipc, const char *plugin_dir, const struct ipc_msg *m,
                  int fds[IPC_MAX_FDS], wrestore_used_fn used) {
  char name[sizeof m->name + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof m->name, m->name);
  if (m->type == IPC_PIN) { /* before its IPC_RESTORE, from a former worker */
    adopt(ipc, name, (uint32_t)m->id, fds[0], fds[1]);
    fds[0] = fds[1] = -1;
  }
  if (m->type == IPC_RESTORE)
    add(ipc, plugin_dir, name, (uint32_t)m->code, fds);
  for (int i = 0; i < IPC_MAX_FDS; i++)
    if (fds[i] >= 0) close(fds[i]);
  if (m->type != IPC_UNRESTORE) return;
  pinset_free(adopted_take(name));
  for (struct wrestore *r = restores; r; r = r->next)
    if (!r->removed && !strcmp(r->name, name)) {
      r->removed = 1;
      if (!r->building) drop_pins(r); /* else once its build is over */
    }
  wrestore_sweep(used);
}

struct worker_listener *wrestore_find(const char *name) {
  for (struct wrestore *r = restores; r; r = r->next)
    if (!r->removed && !r->building && !strncmp(r->name, name, 63))
      return &r->wl;
  return NULL;
}

void wrestore_sweep(wrestore_used_fn used) {
  for (struct wrestore **pp = &restores; *pp;) {
    struct wrestore *r = *pp;
    if (r->removed && !r->building && !used(&r->wl)) {
      *pp = r->next;
      destroy(r);
    } else {
      pp = &r->next;
    }
  }
}

int wrestore_building(void) {
  int n = 0;
  for (struct wrestore *r = restores; r; r = r->next)
    n += r->building;
  return n;
}

void wrestore_free_all(void) {
  stop_starters();
  while (adopted) {
    struct adopted *a = adopted;
    adopted = a->next;
    pinset_free(a->pins);
    free(a);
  }
  while (restores) {
    struct wrestore *r = restores;
    restores = r->next;
    destroy(r);
  }
}

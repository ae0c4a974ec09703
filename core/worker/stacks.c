#include "stacks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "mem.h"
#include "pool.h"
#include "shm.h"
#include "stack.h"
#include "wrestore.h"

/* Stacks are looked up and taken by the thread building a generation and
 * given back by the main thread. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct wstack *stacks;

struct wconf *wconf_get(struct wconf *c) {
  __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
  return c;
}

void wconf_put(struct wconf *c) {
  if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL)) return;
  conf_free(&c->c);
  free(c);
}

/* A live stack for key whose files are those pins gives, with a
 * reference taken; NULL if none. */
static struct wstack *find(const char *key, struct pinset *pins) {
  pthread_mutex_lock(&lock);
  struct wstack *s = stacks;
  for (; s; s = s->next)
    if (!strcmp(s->key, key) && pinrec_same(&s->files, pins)) {
      s->refs++;
      break;
    }
  pthread_mutex_unlock(&lock);
  return s;
}

static void destroy(struct wstack *s) {
  pool_free(s->pool);
  stack_destroy(s->stack);
  if (s->stats) munmap(s->stats, sizeof *s->stats);
  pinrec_clear(&s->files);
  wconf_put(s->conf);
  free(s->key);
  free(s);
}

static struct wstack *build(struct wconf *conf, const struct listener_conf *l,
                            const char *plugin_dir, struct pinset *pins,
                            int stats_fd, char *key, struct conf_err *err) {
  struct wstack *s = xcalloc(1, sizeof *s);
  s->key = key;
  s->conf = wconf_get(conf);
  s->stats = stats_fd >= 0 ? listener_stats_map(stats_fd) : NULL;
  if (!s->stats) {
    conf_err_set(err, "listener %s: no counters from the supervisor", l->name);
    destroy(s);
    return NULL;
  }
  struct worker_listener wl = {.conf = l, .stats = s->stats};
  pinned_scope(pins, &s->files);
  int r = worker_listener_build(&wl, &conf->c, plugin_dir, err);
  pinned_scope(NULL, NULL);
  s->stack = wl.stack;
  s->pool = wl.pool;
  if (r < 0) {
    destroy(s);
    return NULL;
  }
  s->refs = 1;
  pthread_mutex_lock(&lock);
  s->next = stacks;
  stacks = s;
  pthread_mutex_unlock(&lock);
  return s;
}

struct wstack *wstack_get(struct wconf *conf, const struct listener_conf *l,
                          const char *plugin_dir, struct pinset *pins,
                          int stats_fd, int *shared, struct conf_err *err) {
  char *key = stack_key(l, plugin_dir);
  if (!key) {
    conf_err_set(err, "listener %s: out of memory", l->name);
    return NULL;
  }
  struct wstack *s = find(key, pins);
  *shared = s != NULL;
  if (!s) return build(conf, l, plugin_dir, pins, stats_fd, key, err);
  free(key);
  pinrec_share(&s->files, pins); /* its files are the generation's too */
  return s;
}

void wstack_put(struct wstack *s) {
  if (!s) return;
  pthread_mutex_lock(&lock);
  int last = --s->refs == 0;
  if (last)
    for (struct wstack **pp = &stacks; *pp; pp = &(*pp)->next)
      if (*pp == s) {
        *pp = s->next;
        break;
      }
  pthread_mutex_unlock(&lock);
  if (last) destroy(s);
}

int wstack_count(void) {
  int n = 0;
  pthread_mutex_lock(&lock);
  for (struct wstack *s = stacks; s; s = s->next)
    n++;
  pthread_mutex_unlock(&lock);
  return n;
}

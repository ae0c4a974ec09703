/* Listener stacks shared between the configuration generations a worker
 * serves.  A reload sends the new generation to the running worker; each
 * of its listeners whose stack key (stack_key: name, plugin search path,
 * source and layers by value) and data files (pinrec_same) match a stack
 * already built gets that stack, with its instances and their caches;
 * only the others are built.  A stack is freed when no generation uses it
 * (a generation is freed once retired and left by its last session). */
#ifndef UFFDKIT_CORE_STACKS_H
#define UFFDKIT_CORE_STACKS_H

#include <stddef.h>

#include "config.h"
#include "pinned.h"

struct stack;
struct pool;
struct listener_stats;

/* A generation's configuration, kept while a stack built from it lives:
 * plugins read their settings from it at any time. */
struct wconf {
  struct daemon_conf c;
  int refs;
};

struct wstack {
  char *key;
  struct stack *stack;
  struct pool *pool;
  struct listener_stats *stats; /* its listener's counters, its own map */
  struct wconf *conf;           /* what it was built from */
  struct pinrec files;          /* the data files it opened */
  int refs;                     /* generations using it */
  struct wstack *next;
};

/* The stack of l (of conf, in generation pins) from the plugins in
 * plugin_dir: one already built if it matches, else a new one (with
 * stats_fd's counters).  *shared says which.  NULL with why in err. */
struct wstack *wstack_get(struct wconf *conf, const struct listener_conf *l,
                          const char *plugin_dir, struct pinset *pins,
                          int stats_fd, int *shared, struct conf_err *err);
void wstack_put(struct wstack *s);
/* Stacks built and alive (for the log). */
int wstack_count(void);

struct wconf *wconf_get(struct wconf *c);
void wconf_put(struct wconf *c);

#endif

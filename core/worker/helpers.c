#include "helpers.h"

#include <errno.h>
#include <stdlib.h>

struct helper {
  pthread_t t;
  void *(*fn)(void *);
  void *arg;
  struct helpers *owner;
  int done;
  struct helper *next;
};

static void *run(void *p) {
  struct helper *me = p;
  me->fn(me->arg);
  pthread_mutex_lock(&me->owner->lock);
  me->done = 1;
  pthread_mutex_unlock(&me->owner->lock);
  return NULL;
}

/* Takes the threads that are done (all when `all`) off the list, under
 * the lock, and joins them outside it. */
static void join(struct helpers *h, int all) {
  struct helper *out = NULL;
  pthread_mutex_lock(&h->lock);
  for (struct helper **p = &h->list; *p;) {
    struct helper *x = *p;
    if (all || x->done) {
      *p = x->next;
      x->next = out;
      out = x;
    } else {
      p = &x->next;
    }
  }
  pthread_mutex_unlock(&h->lock);
  while (out) {
    struct helper *x = out;
    out = x->next;
    pthread_join(x->t, NULL);
    free(x);
  }
}

int helpers_start(struct helpers *h, void *(*fn)(void *), void *arg) {
  join(h, 0);
  struct helper *x = calloc(1, sizeof *x);
  if (!x) return ENOMEM;
  *x = (struct helper){.fn = fn, .arg = arg, .owner = h};
  /* Listed before it runs, so it can mark itself done at any time. */
  pthread_mutex_lock(&h->lock);
  int rc = pthread_create(&x->t, NULL, run, x);
  if (rc == 0) {
    x->next = h->list;
    h->list = x;
  }
  pthread_mutex_unlock(&h->lock);
  if (rc) free(x);
  return rc;
}

void helpers_join_all(struct helpers *h) {
  join(h, 1);
}

unsigned helpers_count(struct helpers *h) {
  unsigned n = 0;
  pthread_mutex_lock(&h->lock);
  for (struct helper *x = h->list; x; x = x->next)
    n++;
  pthread_mutex_unlock(&h->lock);
  return n;
}

#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One listener copied out of the view. */
struct listener_copy {
  char template[64];
  char name[64];
  char socket[128];
  char source[256];
};

struct copy_arg {
  struct stats_listeners *out;
  int cap;
  int oom;
};

static void copy_listener(void *arg, const struct stats_listener *l) {
  struct copy_arg *a = arg;
  struct stats_listeners *o = a->out;
  if (o->n == a->cap) {
    int cap = a->cap ? a->cap * 2 : 8;
    struct stats_listener *nl = realloc(o->l, (size_t)cap * sizeof *nl);
    if (nl) o->l = nl;
    struct listener_copy *nm =
        nl ? realloc(o->mem, (size_t)cap * sizeof *nm) : NULL;
    if (!nm) {
      a->oom = 1;
      return;
    }
    o->mem = nm;
    a->cap = cap;
  }
  struct listener_copy *m = (struct listener_copy *)o->mem + o->n;
  snprintf(m->name, sizeof m->name, "%s", l->name ? l->name : "");
  snprintf(m->socket, sizeof m->socket, "%s", l->socket ? l->socket : "");
  snprintf(m->source, sizeof m->source, "%s", l->source ? l->source : "");
  snprintf(m->template, sizeof m->template, "%s",
           l->template ? l->template : "");
  o->l[o->n++] =
      (struct stats_listener){.accepting = l->accepting, .stats = l->stats};
}

static int by_name(const void *a, const void *b) {
  const struct stats_listener *x = a, *y = b;
  return strcmp(x->name, y->name);
}

int stats_listeners_get(const struct stats_view *v,
                        struct stats_listeners *out) {
  memset(out, 0, sizeof *out);
  struct copy_arg a = {.out = out};
  if (v->each_listener) v->each_listener(v->opaque, copy_listener, &a);
  if (a.oom) {
    stats_listeners_free(out);
    return -1;
  }
  /* The copies moved while growing: point at them only now. */
  for (int i = 0; i < out->n; i++) {
    struct listener_copy *m = (struct listener_copy *)out->mem + i;
    out->l[i].name = m->name;
    out->l[i].socket = m->socket;
    out->l[i].source = m->source;
    out->l[i].template = m->template[0] ? m->template : NULL;
  }
  if (out->n > 1) qsort(out->l, (size_t)out->n, sizeof *out->l, by_name);
  return 0;
}

void stats_listeners_free(struct stats_listeners *ls) {
  free(ls->l);
  free(ls->mem);
  memset(ls, 0, sizeof *ls);
}

struct totals_arg {
  const struct stats_listener *ls;
  int n;
  struct session_counters *out;
};

static void add_live(void *arg, const struct session_shm *s) {
  struct totals_arg *a = arg;
  for (int i = 0; i < a->n; i++)
    if (!strncmp(a->ls[i].name, s->listener, sizeof s->listener)) {
      session_counters_add(&a->out[i], &s->counters);
      return;
    }
}

void stats_totals(const struct stats_view *v, const struct stats_listener *ls,
                  int n, struct session_counters *out) {
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    session_counters_add(&out[i], &ls[i].stats->ended);
  }
  struct totals_arg a = {ls, n, out};
  if (v->each_session) v->each_session(v->opaque, add_live, &a);
}

#define RATE_MIN_INTERVAL_NS 100000000ull /* shorter: keep the last rate */

struct rate {
  uint64_t id;
  uint64_t t_ns;
  uint64_t faults;
  double per_sec;
  int seen;
};

struct stats_rates {
  struct rate *a;
  size_t n, cap;
};

struct stats_rates *stats_rates_new(void) {
  return calloc(1, sizeof(struct stats_rates));
}

void stats_rates_free(struct stats_rates *r) {
  if (!r) return;
  free(r->a);
  free(r);
}

double stats_fault_rate(struct stats_rates *r, const struct session_shm *s,
                        uint64_t faults, uint64_t now_ns,
                        uint64_t now_unix_ns) {
  struct rate *e = NULL;
  for (size_t i = 0; r && i < r->n; i++)
    if (r->a[i].id == s->id) e = &r->a[i];
  if (e) {
    e->seen = 1;
    if (now_ns - e->t_ns < RATE_MIN_INTERVAL_NS) return e->per_sec;
    e->per_sec = faults >= e->faults ? (double)(faults - e->faults) * 1e9 /
                                           (double)(now_ns - e->t_ns)
                                     : 0;
    e->t_ns = now_ns;
    e->faults = faults;
    return e->per_sec;
  }
  uint64_t age =
      now_unix_ns > s->started_unix_ns ? now_unix_ns - s->started_unix_ns : 0;
  double rate = age >= 1000000 ? (double)faults * 1e9 / (double)age : 0;
  if (r && r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    struct rate *a = realloc(r->a, cap * sizeof *a);
    if (!a) return rate;
    r->a = a;
    r->cap = cap;
  }
  if (r)
    r->a[r->n++] = (struct rate){.id = s->id,
                                 .t_ns = now_ns,
                                 .faults = faults,
                                 .per_sec = rate,
                                 .seen = 1};
  return rate;
}

void stats_rates_sweep(struct stats_rates *r) {
  if (!r) return;
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->a[i].seen) {
      r->a[i].seen = 0;
      r->a[k++] = r->a[i];
    }
  r->n = k;
}

/* The statistics model the control socket and the metrics endpoint both
 * read: the listeners and live sessions as the supervisor shows them, read
 * from shared memory (struct listener_stats and each live struct
 * session_shm) through callbacks each time, so reloads need no notice; the
 * worker is never asked. */
#ifndef UFFDKIT_CORE_STATS_H
#define UFFDKIT_CORE_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "shm.h"

/* A listener as the supervisor shows it.  The strings are copied before
 * the callback returns, so they may live on the caller's stack. */
struct stats_listener {
  const char *name;
  const char *socket;   /* "" when it has none (removed from the config) */
  const char *source;   /* "http+cache+retry": conf_stack_name() */
  int accepting;        /* its socket is open */
  const char *template; /* of a per-restore listener; NULL: from the config */
  struct listener_stats *stats;
};

typedef void (*stats_listener_fn)(void *arg, const struct stats_listener *l);
typedef void (*stats_session_fn)(void *arg, const struct session_shm *s);

struct stats_view {
  /* Calls fn(arg, l) for every listener, including those removed from
   * the config that still have live sessions. */
  void (*each_listener)(void *opaque, stats_listener_fn fn, void *arg);
  /* Calls fn(arg, shm) for every live session. */
  void (*each_session)(void *opaque, stats_session_fn fn, void *arg);
  /* Appends Prometheus text of what listeners do not hold (per-restore
   * listeners summed per template).  May be NULL. */
  void (*metrics_extra)(void *opaque, FILE *out);
  void *opaque;
};

/* A copy of the view's listeners, sorted by name. */
struct stats_listeners {
  struct stats_listener *l;
  int n;
  void *mem;
};
/* Returns 0, or -1 when out of memory. */
int stats_listeners_get(const struct stats_view *v,
                        struct stats_listeners *out);
void stats_listeners_free(struct stats_listeners *ls);

/* For each of the n listeners, into out[i]: the counters of its ended
 * sessions plus those of its live ones. */
void stats_totals(const struct stats_view *v, const struct stats_listener *ls,
                  int n, struct session_counters *out);

/* State kept between samples: the last sample of each session, from which
 * faults per second are computed. */
struct stats_rates;
struct stats_rates *stats_rates_new(void);
void stats_rates_free(struct stats_rates *r);
/* Faults per second of session s (faults so far): since the previous
 * sample taken of it, or since it started.  now_ns is CLOCK_MONOTONIC,
 * now_unix_ns CLOCK_REALTIME; r may be NULL. */
double stats_fault_rate(struct stats_rates *r, const struct session_shm *s,
                        uint64_t faults, uint64_t now_ns, uint64_t now_unix_ns);
/* Forgets sessions not sampled since the last call. */
void stats_rates_sweep(struct stats_rates *r);

#endif

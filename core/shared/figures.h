/* The figures of one restore: how soon its first fault was served, what
 * its working-set replay installed and how long it took, how long its
 * faults took (the session's latency histogram) and the configuration
 * generation serving it.  The worker records them in the session's shared
 * state; `uffdkit ctl list` and the log line at the session's end show
 * them, both through the functions here. */
#ifndef UFFDKIT_CORE_FIGURES_H
#define UFFDKIT_CORE_FIGURES_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* Worker side: a fault was served (only the first is kept). */
void figures_fault_served(struct session_shm *s);
void figures_replay_start(struct session_shm *s, uint64_t listed);
void figures_replay_end(struct session_shm *s, uint64_t installed);

/* The upper bound in microseconds of the latency bucket holding quantile q
 * of count faults, or -1 when it is the last, unbounded bucket. */
double figures_quantile_us(const struct session_counters *c, uint64_t count,
                           double q);
/* "first fault served after ..., ..." for the log line at the end. */
void figures_text(const struct session_shm *s, char *buf, size_t len);
/* Adds generation, first_fault_unix_ns, first_fault_after_us and replay
 * (null, or listed, installed, started_unix_ns, duration_us) to o. */
void figures_json(cJSON *o, const struct session_shm *s);
/* Adds item to o under key (json_put) or to array a (json_push), or
 * frees it when it cannot be added (o NULL, out of memory), so an answer
 * built while memory runs out is smaller, never leaked. */
void json_put(cJSON *o, const char *key, cJSON *item);
void json_push(cJSON *a, cJSON *item);
/* v as an exact JSON integer (cJSON's numbers are doubles, which lose
 * digits past 2^53: nanosecond timestamps). */
void json_add_u64(cJSON *o, const char *key, uint64_t v);

#endif

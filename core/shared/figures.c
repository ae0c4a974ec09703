#include "figures.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "clock.h"

void figures_fault_served(struct session_shm *s) {
  if (shm_load(&s->fig.first_fault_unix_ns)) return;
  uint64_t zero = 0;
  /* Several threads may serve faults: the earliest to get here wins. */
  __atomic_compare_exchange_n(&s->fig.first_fault_unix_ns, &zero,
                              clock_unix_ns(), 0, __ATOMIC_RELAXED,
                              __ATOMIC_RELAXED);
}

void figures_replay_start(struct session_shm *s, uint64_t listed) {
  __atomic_store_n(&s->fig.replay_listed, listed, __ATOMIC_RELAXED);
  __atomic_store_n(&s->fig.replay_installed, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->fig.replay_end_unix_ns, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->fig.replay_start_unix_ns, clock_unix_ns(),
                   __ATOMIC_RELAXED);
}

void figures_replay_end(struct session_shm *s, uint64_t installed) {
  __atomic_store_n(&s->fig.replay_installed, installed, __ATOMIC_RELAXED);
  __atomic_store_n(&s->fig.replay_end_unix_ns, clock_unix_ns(),
                   __ATOMIC_RELAXED);
}

double figures_quantile_us(const struct session_counters *c, uint64_t count,
                           double q) {
  uint64_t want = (uint64_t)ceil(q * (double)count), cum = 0;
  for (int k = 0; k < LAT_BUCKETS - 1; k++) {
    cum += shm_load(&c->lat_buckets[k]);
    if (cum >= want) return (double)(4ull << k);
  }
  return -1;
}

static uint64_t lat_count(const struct session_counters *c) {
  uint64_t n = 0;
  for (int k = 0; k < LAT_BUCKETS; k++)
    n += shm_load(&c->lat_buckets[k]);
  return n;
}

/* "p50 < 64 us" or "p99 >= 65536 us". */
static void quantile_text(char *buf, size_t len, const char *name,
                          const struct session_counters *c, uint64_t n,
                          double q) {
  double b = figures_quantile_us(c, n, q);
  if (b < 0)
    snprintf(buf, len, "%s >= %llu us", name,
             (unsigned long long)(4ull << (LAT_BUCKETS - 2)));
  else
    snprintf(buf, len, "%s < %.0f us", name, b);
}

void figures_text(const struct session_shm *s, char *buf, size_t len) {
  const struct session_figures *f = &s->fig;
  uint64_t first = shm_load(&f->first_fault_unix_ns),
           n = lat_count(&s->counters);
  char ff[64] = "no fault served", p50[48] = "", p99[48] = "", rp[160] = "";
  if (first)
    snprintf(ff, sizeof ff, "first fault served after %.3f ms",
             first > s->started_unix_ns
                 ? (double)(first - s->started_unix_ns) / 1e6
                 : 0.0);
  if (n) {
    quantile_text(p50, sizeof p50, ", fault latency p50", &s->counters, n, 0.5);
    quantile_text(p99, sizeof p99, ", p99", &s->counters, n, 0.99);
  }
  uint64_t rs = shm_load(&f->replay_start_unix_ns),
           re = shm_load(&f->replay_end_unix_ns);
  if (rs)
    snprintf(rp, sizeof rp,
             ", replay installed %" PRIu64 " pages for %" PRIu64
             " listed in %.3f ms%s",
             shm_load(&f->replay_installed), shm_load(&f->replay_listed),
             (double)((re > rs ? re : clock_unix_ns()) - rs) / 1e6,
             re ? "" : " (cut short)");
  snprintf(buf, len, "%s%s%s%s, generation %u", ff, p50, p99, rp, s->gen);
}

void json_put(cJSON *o, const char *key, cJSON *item) {
  if (!cJSON_AddItemToObject(o, key, item)) cJSON_Delete(item);
}

void json_push(cJSON *a, cJSON *item) {
  if (!cJSON_AddItemToArray(a, item)) cJSON_Delete(item);
}

void json_add_u64(cJSON *o, const char *key, uint64_t v) {
  char n[24];
  snprintf(n, sizeof n, "%" PRIu64, v);
  json_put(o, key, cJSON_CreateRaw(n));
}

void figures_json(cJSON *o, const struct session_shm *s) {
  const struct session_figures *f = &s->fig;
  json_add_u64(o, "generation", s->gen);
  uint64_t first = shm_load(&f->first_fault_unix_ns);
  if (first) {
    json_add_u64(o, "first_fault_unix_ns", first);
    json_add_u64(
        o, "first_fault_after_us",
        first > s->started_unix_ns ? (first - s->started_unix_ns) / 1000 : 0);
  } else {
    cJSON_AddNullToObject(o, "first_fault_unix_ns");
    cJSON_AddNullToObject(o, "first_fault_after_us");
  }
  uint64_t rs = shm_load(&f->replay_start_unix_ns),
           re = shm_load(&f->replay_end_unix_ns);
  if (!rs) {
    cJSON_AddNullToObject(o, "replay");
    return;
  }
  cJSON *r = cJSON_AddObjectToObject(o, "replay");
  json_add_u64(r, "listed", shm_load(&f->replay_listed));
  json_add_u64(r, "installed", shm_load(&f->replay_installed));
  json_add_u64(r, "started_unix_ns", rs);
  if (re > rs)
    json_add_u64(r, "duration_us", (re - rs) / 1000);
  else
    cJSON_AddNullToObject(r, "duration_us");
}

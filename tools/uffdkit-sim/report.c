/* The summary line (or JSON object) of a run. */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void result_add_mismatch(struct sim_result *res, const struct sim_vm *vm,
                         uint64_t off) {
  res->mismatches++;
  if (res->have_first_bad) return;
  res->have_first_bad = true;
  res->first_bad_off = off;
  vm_locate(vm, off, &res->first_bad_region);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p) {
  if (!n) return 0;
  size_t rank = (size_t)(p * (double)n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)v[rank - 1] / 1e3;
}

static double mean_us(const uint64_t *v, size_t n) {
  if (!n) return 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += (double)v[i];
  return sum / (double)n / 1e3;
}

struct summary {
  double mean, p50, p90, p99, max;
};

static void summarise(struct sim_result *res, struct summary *s) {
  qsort(res->lat_ns, res->n_lat, sizeof(*res->lat_ns), cmp_u64);
  s->mean = mean_us(res->lat_ns, res->n_lat);
  s->p50 = pct_us(res->lat_ns, res->n_lat, 0.50);
  s->p90 = pct_us(res->lat_ns, res->n_lat, 0.90);
  s->p99 = pct_us(res->lat_ns, res->n_lat, 0.99);
  s->max = pct_us(res->lat_ns, res->n_lat, 1.0);
}

static const char line_fmt[] =
    "pages=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f us_per_fault=%.2f "
    "p50_us=%.2f p90_us=%.2f p99_us=%.2f max_us=%.2f mismatches=%" PRIu64
    " zero_checked=%" PRIu64 " vcpus=%u page_size=%" PRIu64 " regions=%u\n";

static const char json_fmt[] =
    "{\"pages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,"
    "\"us_per_fault\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,"
    "\"max_us\":%.2f,\"mismatches\":%" PRIu64 ",\"zero_checked\":%" PRIu64
    ",\"vcpus\":%u,\"page_size\":%" PRIu64 ",\"regions\":%u}\n";

void report_print(struct sim_result *res, const struct sim_opts *o) {
  struct summary s;
  summarise(res, &s);
  if (res->have_first_bad)
    fprintf(stderr,
            "uffdkit-sim: %" PRIu64 " pages differ from %s; the first at "
            "memory offset 0x%" PRIx64 " (region %u)\n",
            res->mismatches, o->expect ? o->expect : o->image,
            res->first_bad_off, res->first_bad_region);
  printf(o->json ? json_fmt : line_fmt, res->pages, res->bytes, res->seconds,
         s.mean, s.p50, s.p90, s.p99, s.max, res->mismatches, res->zero_checked,
         o->vcpus, o->page_size, o->regions);
  fflush(stdout);
}

/* Which pages the vCPUs touch and in what order; a pure function of the
 * options and --seed, so runs are repeatable. */
#include "restore.h"

#include <stdlib.h>
#include <string.h>

#define TOUCH_SALT 0x746f756368736574ULL
#define ORDER_SALT 0x6f726465727368ULL

static size_t select_pages(const struct restore *r, uint64_t *out) {
  uint64_t total = r->vm->mem_size / r->vm->page_size;
  double pct = r->o->touch_percent;
  size_t n = 0;
  for (uint64_t p = 0; p < total; p++)
    if (pct >= 100 ||
        unit_fraction(mix2(r->o->seed ^ TOUCH_SALT, p)) * 100 < pct)
      out[n++] = p;
  return n;
}

static void shuffle(uint64_t *a, size_t n, uint64_t seed) {
  uint64_t state = seed ^ ORDER_SALT;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(splitmix64(&state) % i);
    uint64_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* stride:K visits positions 0, K, 2K, ... then 1, 1+K, ... */
static int stride(uint64_t *a, size_t n, uint64_t k) {
  uint64_t *tmp = malloc(n * sizeof(*tmp));
  if (!tmp) return -1;
  size_t o = 0;
  for (uint64_t start = 0; start < k && start < n; start++)
    for (size_t i = start; i < n; i += k)
      tmp[o++] = a[i];
  memcpy(a, tmp, n * sizeof(*tmp));
  free(tmp);
  return 0;
}

int plan_build(struct restore *r) {
  uint64_t total = r->vm->mem_size / r->vm->page_size;
  r->pages = malloc(total * sizeof(*r->pages));
  if (!r->pages)
    return sim_err(SIM_SETUP, "out of memory for the list of %llu pages",
                   (unsigned long long)total);
  r->n_pages = select_pages(r, r->pages);
  if (r->o->order == ORDER_RANDOM) shuffle(r->pages, r->n_pages, r->o->seed);
  if (r->o->order == ORDER_STRIDE && stride(r->pages, r->n_pages, r->o->stride))
    return sim_err(SIM_SETUP, "out of memory ordering %zu pages", r->n_pages);
  r->lat_ns = calloc(r->n_pages ? r->n_pages : 1, sizeof(*r->lat_ns));
  r->verified = calloc(r->n_pages ? r->n_pages : 1, 1);
  r->bad = calloc(total / 8 + 1, 1);
  if (!r->lat_ns || !r->verified || !r->bad)
    return sim_err(SIM_SETUP, "out of memory for %zu page records", r->n_pages);
  return 0;
}

#include "wplan.h"

#include <stdlib.h>

#include "bitmap.h"
#include "mem.h"

/* The furthest listed, unplanned page reachable from pg in direction dir
 * (+1 or -1) without crossing more than gap unlisted pages or leaving
 * [lo, hi). */
static uint64_t reach(const uint64_t *in, const uint64_t *planned, uint64_t pg,
                      int dir, uint64_t gap, uint64_t lo, uint64_t hi) {
  uint64_t end = pg, p = pg, unlisted = 0;
  while (dir > 0 ? p + 1 < hi : p > lo) {
    p = dir > 0 ? p + 1 : p - 1;
    if (bitmap_test(planned, p)) break;
    if (!bitmap_test(in, p)) {
      if (++unlisted > gap) break;
      continue;
    }
    unlisted = 0;
    end = p;
  }
  return end;
}

size_t wplan_build(const uint64_t *pages, size_t npages, uint64_t nsrc,
                   uint64_t gap, uint64_t block_pages, struct wrange **out) {
  uint64_t *in = xcalloc(bitmap_words(nsrc), sizeof *in);
  uint64_t *planned = xcalloc(bitmap_words(nsrc), sizeof *planned);
  for (size_t i = 0; i < npages; i++)
    if (pages[i] < nsrc) bitmap_set(in, pages[i], 1);
  struct wrange *r = NULL;
  size_t n = 0, cap = 0;
  for (size_t i = 0; i < npages; i++) {
    uint64_t pg = pages[i];
    if (pg >= nsrc || bitmap_test(planned, pg)) continue;
    uint64_t lo = pg & ~(block_pages - 1);
    uint64_t hi = lo + block_pages < nsrc ? lo + block_pages : nsrc;
    uint64_t a = reach(in, planned, pg, -1, gap, lo, hi);
    uint64_t b = reach(in, planned, pg, +1, gap, lo, hi);
    bitmap_set(planned, a, b - a + 1);
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      r = xrealloc(r, cap, sizeof *r);
    }
    r[n++] = (struct wrange){a, b - a + 1};
  }
  free(in);
  free(planned);
  *out = r;
  return n;
}

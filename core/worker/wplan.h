/* The fetch plan of a working-set replay: the source ranges to ask for, in
 * the order the guest first touched them.  Each range gathers the listed
 * pages around the first page not yet planned, merging neighbours across
 * gaps of at most `gap` unlisted pages, within one aligned block of
 * `block` bytes (a power of two: a range never straddles a chunk boundary
 * of a cache or store whose chunk divides it, and a big run is split into
 * blocks fetched side by side). */
#ifndef UFFDKIT_CORE_WPLAN_H
#define UFFDKIT_CORE_WPLAN_H

#include <stddef.h>
#include <stdint.h>

struct wrange {
  uint64_t first, n; /* source pages [first, first + n) */
};

/* Plans pages[0..npages) (source page numbers below nsrc, in first-touch
 * order, each listed once) into *out (malloc'ed); returns the number of
 * ranges.  block_pages is a power of two. */
size_t wplan_build(const uint64_t *pages, size_t npages, uint64_t nsrc,
                   uint64_t gap, uint64_t block_pages, struct wrange **out);

#endif

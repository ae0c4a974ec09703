/* A set of bits over an array of 64-bit words: the session's page state
 * (shared between threads and with the supervisor), the working set and the
 * snapshot tools' block maps.  Every access is a relaxed atomic, since the
 * page bitmaps are read and written by several threads at once; on a
 * private bitmap that costs nothing measurable. */
#ifndef UFFDKIT_COMMON_BITMAP_H
#define UFFDKIT_COMMON_BITMAP_H

#include <stddef.h>
#include <stdint.h>

/* Words for a bitmap of n bits (one spare, so n may be 0). */
static inline size_t bitmap_words(uint64_t n) {
  return (size_t)(n / 64 + 1);
}

static inline int bitmap_test(const uint64_t *b, uint64_t i) {
  return (__atomic_load_n(&b[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

/* Sets (on != 0) or clears bits [first, first + n), a word at a time. */
static inline void bitmap_assign(uint64_t *b, uint64_t first, uint64_t n,
                                 int on) {
  for (uint64_t i = first; i < first + n;) {
    uint64_t lo = i % 64, k = 64 - lo;
    if (k > first + n - i) k = first + n - i;
    uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << lo;
    if (on)
      __atomic_fetch_or(&b[i / 64], mask, __ATOMIC_RELAXED);
    else
      __atomic_fetch_and(&b[i / 64], ~mask, __ATOMIC_RELAXED);
    i += k;
  }
}

static inline void bitmap_set(uint64_t *b, uint64_t first, uint64_t n) {
  bitmap_assign(b, first, n, 1);
}

static inline void bitmap_clear(uint64_t *b, uint64_t first, uint64_t n) {
  bitmap_assign(b, first, n, 0);
}

#endif

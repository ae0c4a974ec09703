/* The test pattern, shared by the plugin and pattern-image so both produce
 * the same bytes: each 4 KiB page is either all zeros (about zero_percent
 * of them, chosen by a hash of the seed and the page index) or 512 64-bit
 * words that depend only on the seed, the page index and the word index. */
#ifndef PATTERN_H
#define PATTERN_H

#include <stdint.h>
#include <string.h>

#define PATTERN_PAGE 4096u
#define PATTERN_WORDS (PATTERN_PAGE / sizeof(uint64_t))

/* splitmix64's finaliser: a cheap, well-mixed 64-bit hash. */
static inline uint64_t pattern_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline int pattern_is_zero(uint64_t seed, uint64_t page,
                                  unsigned zero_percent) {
  return zero_percent &&
         pattern_mix(pattern_mix(seed) ^ pattern_mix(~page)) % 100 <
             zero_percent;
}

/* Writes page number `page` into out (PATTERN_PAGE bytes, 8-byte aligned). */
static inline void pattern_fill(uint64_t seed, uint64_t page,
                                unsigned zero_percent, uint64_t *out) {
  if (pattern_is_zero(seed, page, zero_percent)) {
    memset(out, 0, PATTERN_PAGE);
    return;
  }
  uint64_t base = pattern_mix(seed) + page * PATTERN_WORDS;
  for (uint64_t i = 0; i < PATTERN_WORDS; i++)
    out[i] = pattern_mix(base + i);
}

#endif

/* Input of fuzz-snapv4 (and its seeds): two bytes choosing the metadata,
 * then an inner block, which is wrapped into a V4/V5 container (its LZ4
 * frame made here) so the fuzzer explores the build entries, frame tables
 * and mapping sections rather than LZ4's checksums.
 *   byte 0: bit 0 version 5 (else 4), bit 1 2 MiB blocks (else 4 KiB),
 *           bit 2 Flags bit 0 set
 *   byte 1: memory size - 1 in blocks (1 to 256 blocks) */
#ifndef UFFDKIT_FUZZ_SNAPV4_WRAP_H
#define UFFDKIT_FUZZ_SNAPV4_WRAP_H

#include <lz4frame.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void wrap_put(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* A malloc'd header file made of the input, in *len bytes; NULL if the
 * input is shorter than its two bytes. */
static inline uint8_t *snapv4_wrap(const uint8_t *in, size_t n, size_t *len) {
  if (n < 2) return NULL;
  uint64_t bs = in[0] & 2 ? 2u << 20 : 4096;
  size_t inner = n - 2;
  size_t cap = 69 + LZ4F_compressFrameBound(inner, NULL);
  uint8_t *f = calloc(1, cap);
  if (!f) return NULL;
  wrap_put(f, in[0] & 1 ? 5 : 4, 8);
  wrap_put(f + 8, bs, 8);
  wrap_put(f + 16, bs * ((uint64_t)in[1] + 1), 8);
  wrap_put(f + 24, 3, 8);
  memset(f + 32, 0xaa, 16);
  memset(f + 48, 0xbb, 16);
  f[64] = in[0] & 4 ? 1 : 0;
  wrap_put(f + 65, inner, 4);
  size_t c = LZ4F_compressFrame(f + 69, cap - 69, in + 2, inner, NULL);
  if (LZ4F_isError(c)) {
    free(f);
    return NULL;
  }
  *len = 69 + c;
  return f;
}

#endif

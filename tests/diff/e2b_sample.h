/* A V4/V5 header built in memory, shared by the E2B unit tests. */
#ifndef UFFDKIT_TEST_E2B_SAMPLE_H
#define UFFDKIT_TEST_E2B_SAMPLE_H

#include <stdlib.h>
#include <string.h>

#include "snapheader.h"

#define K4 4096ull

static struct ufk_snap_frame fr(uint64_t u, uint64_t c, uint32_t su,
                                uint32_t sc) {
  return (struct ufk_snap_frame){u, c, su, sc};
}

/* 64 KiB of memory: A [0,16K) at 0, nil [16K,32K), B [32K,48K) at 8K, A
 * [48K,64K) at 16K.  A is zstd with two 16 KiB frames (C 0-100, 100-180)
 * and a third at U 32K; B is the all-zero entry. */
static void sample(struct ufk_snap_header *h, unsigned version) {
  memset(h, 0, sizeof *h);
  h->version = version;
  h->block_size = K4;
  h->size = 16 * K4;
  h->generation = 2;
  memset(h->build_id, 0xaa, 16);
  memset(h->base_build_id, 0xbb, 16);
  static const uint64_t m[4][3] = {{0, 4, 0}, {4, 4, 0}, {8, 4, 2}, {12, 4, 4}};
  static const int who[4] = {0xaa, 0, 0xbb, 0xaa};
  h->nmappings = 4;
  h->mappings = calloc(4, sizeof *h->mappings);
  for (int i = 0; i < 4; i++) {
    h->mappings[i].offset = m[i][0] * K4;
    h->mappings[i].length = m[i][1] * K4;
    memset(h->mappings[i].build_id, who[i], 16);
    h->mappings[i].storage_offset = who[i] ? m[i][2] * K4 : 0;
  }
  h->nentries = 2;
  h->entries = calloc(2, sizeof *h->entries);
  struct ufk_snap_entry *a = &h->entries[0];
  memset(a->build_id, 0xaa, 16);
  a->size = 8 * K4;
  memset(a->checksum, 0x5c, 32);
  a->codec = UFK_SNAP_CODEC_ZSTD;
  a->nframes = 2;
  a->frames = calloc(2, sizeof *a->frames);
  a->frames[0] = fr(0, 0, 4 * K4, 100);
  a->frames[1] = fr(4 * K4, 100, 4 * K4, 80);
  memset(h->entries[1].build_id, 0xbb, 16);
}

#endif

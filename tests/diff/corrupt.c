/* corrupt IN OUT KIND: writes OUT, the V4/V5 header IN damaged one way, for
 * the tests that check such headers are refused with a precise message.
 *   lz4-bit     one bit flipped inside the LZ4 frame of the inner block
 *   u-plus-one  U (byte 65) one more than the inner block's length
 *   trailing    4 bytes after the LZ4 frame
 *   duplicate   the first build entry twice
 *   codec3      the first build entry's Codec set to 3
 *   overlap     a frame starting inside the one before it (an entry with
 *               two frames or more)
 *   varint      (V5) the first offset varint 10 bytes long, overflowing
 *   incomplete  Flags bit 0 (IncompletePendingUpload) set
 *   zero-ancestor  (not damage: what E2B wrote when it lost track) the
 *               first compressed ancestor's entry made the all-zero entry */
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapheader.h"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*len + 16);
  if (b && fread(b, 1, *len, f) != *len) b = NULL;
  fclose(f);
  return b;
}

static int spit(const char *path, const uint8_t *b, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, len, f) != len) return -1;
  return fclose(f);
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Edits the parsed header and writes it again (unchecked). */
static int edit(const uint8_t *in, size_t len, const char *kind, uint8_t **out,
                size_t *olen) {
  struct ufk_snap_header h;
  struct ufk_snap_err err;
  if (ufk_snap_parse(in, len, "in", &h, &err) < 0) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  if (!strcmp(kind, "duplicate")) {
    h.entries = realloc(h.entries, (h.nentries + 1) * sizeof *h.entries);
    ufk_snap_entry_copy(&h.entries[0], &h.entries[h.nentries++]);
  } else if (!strcmp(kind, "codec3")) {
    h.entries[0].codec = 3;
  } else if (!strcmp(kind, "zero-ancestor")) {
    size_t i = 0;
    while (i < h.nentries && (!h.entries[i].nframes ||
                              !memcmp(h.entries[i].build_id, h.build_id, 16)))
      i++;
    if (i == h.nentries) return -1;
    struct ufk_snap_entry *e = &h.entries[i];
    ufk_snap_entry_free(e);
    e->codec = 0;
    e->size = 0;
    memset(e->checksum, 0, sizeof e->checksum);
  } else {
    size_t i = 0;
    while (i < h.nentries && h.entries[i].nframes < 2)
      i++;
    if (i == h.nentries) return -1;
    h.entries[i].frames[1].start_u = h.entries[i].frames[0].start_u + 4096;
  }
  int rc = ufk_snap_encode(&h, out, olen, &err);
  ufk_snap_free(&h);
  return rc;
}

/* Decompresses the inner block, lengthens the first offset varint to an
 * overflowing 10 bytes, compresses it again. */
static int varint(const uint8_t *in, size_t len, uint8_t **out, size_t *olen) {
  uint32_t u = le32(in + 65);
  uint8_t *inner = malloc(u + 16);
  LZ4F_dctx *d;
  LZ4F_createDecompressionContext(&d, LZ4F_VERSION);
  size_t dl = u, sl = len - 69;
  LZ4F_decompress(d, inner, &dl, in + 69, &sl, NULL);
  LZ4F_freeDecompressionContext(d);
  size_t pos = 4;
  for (uint32_t i = 0, n = le32(inner); i < n; i++)
    pos += 64 + 24 * (size_t)le32(inner + pos + 60);
  pos += 4 + 16 * (size_t)le32(inner + pos) + 4;
  size_t old = 1;
  while (inner[pos + old - 1] & 0x80)
    old++;
  static const uint8_t big[10] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0x02};
  memmove(inner + pos + 10, inner + pos + old, u - pos - old);
  memcpy(inner + pos, big, 10);
  u += (uint32_t)(10 - old);
  size_t cap = 69 + LZ4F_compressFrameBound(u, NULL);
  *out = malloc(cap);
  memcpy(*out, in, 69);
  put32(*out + 65, u);
  *olen = 69 + LZ4F_compressFrame(*out + 69, cap - 69, inner, u, NULL);
  free(inner);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: corrupt IN OUT KIND\n");
    return 2;
  }
  size_t len, olen;
  uint8_t *in = slurp(argv[1], &len), *out = NULL;
  const char *k = argv[3];
  if (!in || len < 100) return 1;
  out = in;
  olen = len;
  if (!strcmp(k, "lz4-bit"))
    in[len / 2] ^= 0x10;
  else if (!strcmp(k, "u-plus-one"))
    put32(in + 65, le32(in + 65) + 1);
  else if (!strcmp(k, "trailing"))
    memcpy(in + len, "tail", 4), olen += 4;
  else if (!strcmp(k, "incomplete"))
    in[64] |= 1;
  else if (!strcmp(k, "varint") ? varint(in, len, &out, &olen) < 0
           : (!strcmp(k, "duplicate") || !strcmp(k, "codec3") ||
              !strcmp(k, "overlap") || !strcmp(k, "zero-ancestor"))
               ? edit(in, len, k, &out, &olen) < 0
               : 1) {
    fprintf(stderr, "corrupt: cannot make '%s'\n", k);
    return 1;
  }
  int rc = spit(argv[2], out, olen) < 0;
  if (out != in) free(out);
  free(in);
  return rc;
}

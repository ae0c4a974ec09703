/* Internals shared by the snapshot header's source files (snapheader.c,
 * snapmerge.c, snapv4.c, snapv5.c, snapframe.c); not for other callers. */
#ifndef UFFDKIT_COMMON_SNAPINT_H
#define UFFDKIT_COMMON_SNAPINT_H

#include <stddef.h>
#include <stdint.h>

#include "snapheader.h"

/* Checks Version, BlockSize and Size of the metadata. */
int ufk_snap_check_meta(const struct ufk_snap_header *h, const char *name,
                        struct ufk_snap_err *err);
void ufk_snap_decode_meta(const uint8_t *p, struct ufk_snap_header *h);
void ufk_snap_encode_meta(const struct ufk_snap_header *h, uint8_t *p);
void ufk_snap_decode_mapping(const uint8_t *p, struct ufk_snap_mapping *m);
void ufk_snap_encode_mapping(const struct ufk_snap_mapping *m, uint8_t *p);

/* The V4/V5 container of buf (len bytes, metadata already decoded into h):
 * flags, the LZ4 frame and the inner block, into h's entries and mappings. */
int ufk_snap_parse_container(const uint8_t *buf, size_t len, const char *name,
                             struct ufk_snap_header *h,
                             struct ufk_snap_err *err);
/* h serialised as a V4/V5 header, in a malloc'd *out. */
int ufk_snap_encode_container(const struct ufk_snap_header *h, uint8_t **out,
                              size_t *len, struct ufk_snap_err *err);
/* Every entry's parse rules, and no build described twice. */
int ufk_snap_check_entries(const struct ufk_snap_header *h, const char *name,
                           struct ufk_snap_err *err);
/* V5 mapping section: parses it from p (len bytes, at inner offset base) into
 * h->mappings; *used gets the bytes it took. */
int ufk_snap_parse_v5(const uint8_t *p, size_t len, size_t base,
                      const char *name, struct ufk_snap_header *h, size_t *used,
                      struct ufk_snap_err *err);
/* Bytes of h's V5 mapping section, and writing it (NULL out: size only);
 * SIZE_MAX when out of memory. */
size_t ufk_snap_encode_v5(const struct ufk_snap_header *h, uint8_t *out);

static inline uint64_t ufk_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static inline uint32_t ufk_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline void ufk_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void ufk_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

#endif

/* The V4/V5 container: [Metadata 64][u8 Flags][u32 U][one LZ4 frame of the
 * inner block], and the inner block's build entries and V4 mappings. */
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "snapint.h"

#define fail ufk_snap_fail
#define FLAGS_AT 64u
#define U_AT 65u
#define ENTRY_SIZE 64u
#define FRAME_SIZE 24u
#define FIRST_CHUNK (1u << 20)

/* The LZ4 frame must decode to exactly want bytes and end at the end of the
 * file.  The buffer grows as data comes, so a small file cannot make us
 * allocate U bytes up front. */
struct lz4_out {
  uint8_t *buf;
  size_t cap, len;
};

static int grow(struct lz4_out *o, size_t want) {
  size_t cap = o->cap ? o->cap * 2 : FIRST_CHUNK;
  if (cap > want + 1) cap = want + 1;
  uint8_t *nb = realloc(o->buf, cap);
  if (!nb) return -1;
  o->buf = nb;
  o->cap = cap;
  return 0;
}

static int lz4_steps(LZ4F_dctx *dctx, const uint8_t *src, size_t slen,
                     uint32_t want, struct lz4_out *o, const char *name,
                     struct ufk_snap_err *err) {
  size_t spos = 0, ret = 1;
  while (ret != 0) {
    if (o->len == o->cap && grow(o, want) < 0)
      return fail(err, "%s: out of memory for the %u-byte inner block", name,
                  want);
    size_t sl = slen - spos, dl = o->cap - o->len;
    ret = LZ4F_decompress(dctx, o->buf + o->len, &dl, src + spos, &sl, NULL);
    if (LZ4F_isError(ret))
      return fail(err,
                  "%s: the LZ4 frame of the inner block (byte %u) is corrupt "
                  "near byte %zu: %s",
                  name, U_AT + 4, (size_t)(U_AT + 4) + spos,
                  LZ4F_getErrorName(ret));
    spos += sl;
    o->len += dl;
    if (o->len > want)
      return fail(err,
                  "%s: the LZ4 frame decodes to more than the %u bytes of U "
                  "(byte %u)",
                  name, want, U_AT);
    if (ret != 0 && sl == 0 && dl == 0 && spos == slen)
      return fail(err,
                  "%s: the LZ4 frame of the inner block ends early, at byte "
                  "%zu (truncated)",
                  name, (size_t)(U_AT + 4) + slen);
  }
  if (o->len != want)
    return fail(err,
                "%s: the LZ4 frame decodes to %zu bytes, but U (byte %u) is %u",
                name, o->len, U_AT, want);
  if (spos != slen)
    return fail(err,
                "%s: %zu bytes after the LZ4 frame, which ends at byte %zu",
                name, slen - spos, (size_t)(U_AT + 4) + spos);
  return 0;
}

static int lz4_inner(const uint8_t *src, size_t slen, uint32_t want,
                     uint8_t **out, const char *name,
                     struct ufk_snap_err *err) {
  LZ4F_dctx *dctx;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
    return fail(err, "%s: cannot make an LZ4 decoder", name);
  struct lz4_out o = {0};
  int rc = lz4_steps(dctx, src, slen, want, &o, name, err);
  LZ4F_freeDecompressionContext(dctx);
  if (rc < 0)
    free(o.buf);
  else
    *out = o.buf;
  return rc;
}

/* An i64 of the inner block that must not be negative. */
static int get_nonneg(const uint8_t *p, uint64_t *v) {
  *v = ufk_le64(p);
  return *v >> 63 ? -1 : 0;
}

static int decode_frames(const uint8_t *p, struct ufk_snap_entry *e, size_t i,
                         size_t base, const char *name,
                         struct ufk_snap_err *err) {
  char id[UFK_SNAP_UUID_STR];
  for (size_t k = 0; k < e->nframes; k++) {
    const uint8_t *f = p + FRAME_SIZE * k;
    struct ufk_snap_frame *fr = &e->frames[k];
    int32_t su = (int32_t)ufk_le32(f + 16), sc = (int32_t)ufk_le32(f + 20);
    if (get_nonneg(f, &fr->start_u) < 0 ||
        get_nonneg(f + 8, &fr->start_c) < 0 || su <= 0 || sc <= 0) {
      ufk_snap_id_str(e->build_id, id);
      return fail(err,
                  "%s: build entry %zu (%s), frame %zu (inner byte %zu): "
                  "StartU %lld, StartC %lld, SizeU %d, SizeC %d: starts must "
                  "not be negative and sizes must be positive",
                  name, i, id, k, base + ENTRY_SIZE + FRAME_SIZE * k,
                  (long long)ufk_le64(f), (long long)ufk_le64(f + 8), su, sc);
    }
    fr->size_u = (uint32_t)su;
    fr->size_c = (uint32_t)sc;
  }
  return 0;
}

/* Entry i at *pos: 64 bytes and its frame table. */
static int decode_entry(const uint8_t *p, size_t len, size_t *pos, size_t i,
                        struct ufk_snap_entry *e, const char *name,
                        struct ufk_snap_err *err) {
  size_t base = *pos, left = len - base;
  if (left < ENTRY_SIZE)
    return fail(err,
                "%s: build entry %zu (inner byte %zu): %zu bytes left, an "
                "entry takes %u",
                name, i, base, left, ENTRY_SIZE);
  const uint8_t *q = p + base;
  memcpy(e->build_id, q, 16);
  memcpy(e->checksum, q + 24, 32);
  e->codec = ufk_le32(q + 56);
  uint32_t n = ufk_le32(q + 60);
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(e->build_id, id);
  if (get_nonneg(q + 16, &e->size) < 0)
    return fail(err,
                "%s: build entry %zu (%s, inner byte %zu): Size is negative",
                name, i, id, base);
  if (n > UFK_SNAP_MAX_FRAMES || (uint64_t)n * FRAME_SIZE > left - ENTRY_SIZE)
    return fail(err,
                "%s: build entry %zu (%s, inner byte %zu): %u frames, more "
                "than %u or than the %zu bytes left hold",
                name, i, id, base, n, UFK_SNAP_MAX_FRAMES, left - ENTRY_SIZE);
  e->nframes = n;
  if (n && !(e->frames = calloc(n, sizeof *e->frames)))
    return fail(err, "%s: out of memory for %u frames", name, n);
  if (decode_frames(q + ENTRY_SIZE, e, i, base, name, err) < 0) return -1;
  *pos = base + ENTRY_SIZE + FRAME_SIZE * (size_t)n;
  return ufk_snap_check_entry(e, i, base, name, err);
}

static int decode_entries(const uint8_t *p, size_t len, size_t *pos,
                          const char *name, struct ufk_snap_header *h,
                          struct ufk_snap_err *err) {
  if (len < 4)
    return fail(err, "%s: the inner block is %zu bytes, too short for nBuilds",
                name, len);
  uint32_t n = ufk_le32(p);
  *pos = 4;
  /* Each entry takes at least 64 bytes. */
  if (n > (len - 4) / ENTRY_SIZE)
    return fail(err,
                "%s: nBuilds (inner byte 0) is %u, more than the %zu bytes "
                "left hold",
                name, n, len - 4);
  if (n && !(h->entries = calloc(n, sizeof *h->entries)))
    return fail(err, "%s: out of memory for %u build entries", name, n);
  for (uint32_t i = 0; i < n; i++) {
    h->nentries = i + 1;
    if (decode_entry(p, len, pos, i, &h->entries[i], name, err) < 0) return -1;
  }
  return 0;
}

/* V4: u32 nMappings and 40-byte records; none means one run of the
 * header's own build. */
static int decode_v4_mappings(const uint8_t *p, size_t len, size_t *pos,
                              const char *name, struct ufk_snap_header *h,
                              struct ufk_snap_err *err) {
  size_t at = *pos;
  if (len - at < 4)
    return fail(err,
                "%s: inner byte %zu: %zu bytes left, too short for nMappings",
                name, at, len - at);
  uint32_t n = ufk_le32(p + at);
  at += 4;
  if (n > (len - at) / UFK_SNAP_MAPPING_SIZE)
    return fail(err,
                "%s: nMappings (inner byte %zu) is %u, more than the %zu "
                "bytes left hold",
                name, at - 4, n, len - at);
  h->nmappings = n ? n : 1;
  if (!(h->mappings = calloc(h->nmappings, sizeof *h->mappings)))
    return fail(err, "%s: out of memory for %u mappings", name, n);
  for (uint32_t i = 0; i < n; i++)
    ufk_snap_decode_mapping(p + at + UFK_SNAP_MAPPING_SIZE * i,
                            &h->mappings[i]);
  if (n == 0) {
    uint64_t page = UFK_SNAP_PAGE;
    h->mappings[0].length = (h->size + page - 1) / page * page;
    memcpy(h->mappings[0].build_id, h->build_id, 16);
  }
  *pos = at + UFK_SNAP_MAPPING_SIZE * (size_t)n;
  return 0;
}

static int parse_inner(const uint8_t *p, size_t len, const char *name,
                       struct ufk_snap_header *h, struct ufk_snap_err *err) {
  size_t pos = 0, used = 0;
  if (decode_entries(p, len, &pos, name, h, err) < 0) return -1;
  if (ufk_snap_format(h) == 4) {
    if (decode_v4_mappings(p, len, &pos, name, h, err) < 0) return -1;
  } else {
    if (ufk_snap_parse_v5(p + pos, len - pos, pos, name, h, &used, err) < 0)
      return -1;
    pos += used;
  }
  if (pos != len)
    return fail(err,
                "%s: %zu bytes left over after the mapping section, from "
                "inner byte %zu of %zu",
                name, len - pos, pos, len);
  return 0;
}

int ufk_snap_parse_container(const uint8_t *buf, size_t len, const char *name,
                             struct ufk_snap_header *h,
                             struct ufk_snap_err *err) {
  if (len < UFK_SNAP_V4_PREFIX)
    return fail(err,
                "%s: %zu bytes, shorter than the %u bytes of metadata, Flags "
                "and U of a V%u header",
                name, len, UFK_SNAP_V4_PREFIX, ufk_snap_format(h));
  h->flags = buf[FLAGS_AT];
  if (h->flags & UFK_SNAP_FLAG_INCOMPLETE)
    return fail(err,
                "%s: Flags (byte %u) 0x%02x has bit 0 "
                "(IncompletePendingUpload) set: the build's data is not in "
                "storage yet",
                name, FLAGS_AT, h->flags);
  uint32_t want = ufk_le32(buf + U_AT);
  if (want > UFK_SNAP_INNER_MAX)
    return fail(err, "%s: U (byte %u) is %u, more than the %u bytes allowed",
                name, U_AT, want, UFK_SNAP_INNER_MAX);
  uint8_t *inner = NULL;
  if (lz4_inner(buf + UFK_SNAP_V4_PREFIX, len - UFK_SNAP_V4_PREFIX, want,
                &inner, name, err) < 0)
    return -1;
  int rc = parse_inner(inner, want, name, h, err);
  free(inner);
  return rc;
}

static size_t inner_size(const struct ufk_snap_header *h) {
  size_t n = 4;
  for (size_t i = 0; i < h->nentries; i++)
    n += ENTRY_SIZE + FRAME_SIZE * h->entries[i].nframes;
  if (ufk_snap_format(h) == 4)
    return n + 4 + UFK_SNAP_MAPPING_SIZE * h->nmappings;
  size_t m = ufk_snap_encode_v5(h, NULL);
  return m == SIZE_MAX ? SIZE_MAX : n + m;
}

static uint8_t *encode_entry(const struct ufk_snap_entry *e, uint8_t *q) {
  memcpy(q, e->build_id, 16);
  ufk_put64(q + 16, e->size);
  memcpy(q + 24, e->checksum, 32);
  ufk_put32(q + 56, e->codec);
  ufk_put32(q + 60, (uint32_t)e->nframes);
  q += ENTRY_SIZE;
  for (size_t k = 0; k < e->nframes; k++, q += FRAME_SIZE) {
    ufk_put64(q, e->frames[k].start_u);
    ufk_put64(q + 8, e->frames[k].start_c);
    ufk_put32(q + 16, e->frames[k].size_u);
    ufk_put32(q + 20, e->frames[k].size_c);
  }
  return q;
}

static void encode_inner(const struct ufk_snap_header *h, uint8_t *p) {
  ufk_put32(p, (uint32_t)h->nentries);
  p += 4;
  for (size_t i = 0; i < h->nentries; i++)
    p = encode_entry(&h->entries[i], p);
  if (ufk_snap_format(h) == 5) {
    ufk_snap_encode_v5(h, p);
    return;
  }
  ufk_put32(p, (uint32_t)h->nmappings);
  for (size_t i = 0; i < h->nmappings; i++)
    ufk_snap_encode_mapping(&h->mappings[i], p + 4 + UFK_SNAP_MAPPING_SIZE * i);
}

/* The frame E2B's writer makes: independent 4 MiB blocks, block and content
 * checksums (FLG 0x74, BD 0x70). */
static size_t lz4_pack(const uint8_t *in, size_t len, uint8_t *out,
                       size_t cap) {
  LZ4F_preferences_t prefs;
  memset(&prefs, 0, sizeof prefs);
  prefs.frameInfo.blockSizeID = LZ4F_max4MB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
  return LZ4F_compressFrame(out, cap, in, len, &prefs);
}

int ufk_snap_encode_container(const struct ufk_snap_header *h, uint8_t **out,
                              size_t *len, struct ufk_snap_err *err) {
  size_t n = inner_size(h);
  if (n == SIZE_MAX) return fail(err, "out of memory encoding the mappings");
  if (n > UFK_SNAP_INNER_MAX)
    return fail(err, "the inner block would be %zu bytes, more than %u", n,
                UFK_SNAP_INNER_MAX);
  LZ4F_preferences_t prefs = {.frameInfo = {.blockSizeID = LZ4F_max4MB}};
  size_t cap = UFK_SNAP_V4_PREFIX + LZ4F_compressFrameBound(n, &prefs) + 64;
  uint8_t *inner = malloc(n ? n : 1), *buf = malloc(cap);
  if (!inner || !buf) {
    free(inner);
    free(buf);
    return fail(err, "out of memory for a %zu-byte header", n);
  }
  encode_inner(h, inner);
  ufk_snap_encode_meta(h, buf);
  buf[FLAGS_AT] = h->flags;
  ufk_put32(buf + U_AT, (uint32_t)n);
  size_t c =
      lz4_pack(inner, n, buf + UFK_SNAP_V4_PREFIX, cap - UFK_SNAP_V4_PREFIX);
  free(inner);
  if (LZ4F_isError(c)) {
    free(buf);
    return fail(err, "cannot compress the inner block: %s",
                LZ4F_getErrorName(c));
  }
  *out = buf;
  *len = UFK_SNAP_V4_PREFIX + c;
  return 0;
}

/* V4/V5 build entries: frame tables (E2B compress_frame_table.go) and the
 * zstd / lz4 frames of compressed diffs (compress_encode.go,
 * compress_decode.go). */
#include <lz4frame.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "snapint.h"

#define fail ufk_snap_fail
#define I64_MAX 0x7FFFFFFFFFFFFFFFull

const struct ufk_snap_entry *ufk_snap_entry_of(const struct ufk_snap_header *h,
                                               const uint8_t id[16]) {
  for (size_t i = 0; i < h->nentries; i++)
    if (!memcmp(h->entries[i].build_id, id, 16)) return &h->entries[i];
  return NULL;
}

int ufk_snap_compressed(const struct ufk_snap_entry *e) {
  return e && e->codec != UFK_SNAP_CODEC_NONE && e->nframes > 0;
}

long ufk_snap_frame_find(const struct ufk_snap_entry *e, uint64_t u) {
  /* The last frame starting at or before u. */
  size_t lo = 0, hi = e->nframes;
  if (hi == 0 || e->frames[0].start_u > u) return -1;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (e->frames[mid].start_u <= u)
      lo = mid;
    else
      hi = mid;
  }
  const struct ufk_snap_frame *f = &e->frames[lo];
  return u - f->start_u < f->size_u ? (long)lo : -1;
}

int ufk_snap_frames_cover(const struct ufk_snap_entry *e, uint64_t u,
                          uint64_t len, uint64_t *gap) {
  uint64_t end = u + len;
  while (u < end) {
    long k = ufk_snap_frame_find(e, u);
    if (k < 0) {
      *gap = u;
      return 0;
    }
    u = e->frames[k].start_u + e->frames[k].size_u;
  }
  return 1;
}

const char *ufk_snap_codec_suffix(uint32_t codec) {
  return codec == UFK_SNAP_CODEC_ZSTD  ? ".zstd"
         : codec == UFK_SNAP_CODEC_LZ4 ? ".lz4"
                                       : "";
}

const char *ufk_snap_codec_name(uint32_t codec) {
  return codec == UFK_SNAP_CODEC_ZSTD   ? "zstd"
         : codec == UFK_SNAP_CODEC_LZ4  ? "lz4"
         : codec == UFK_SNAP_CODEC_NONE ? "none"
                                        : "unknown";
}

/* "NAME: build entry I (ID, inner byte B): " into buf. */
static const char *entry_where(const struct ufk_snap_entry *e, size_t i,
                               size_t base, const char *name, char *buf,
                               size_t len) {
  char id[UFK_SNAP_UUID_STR], at[40] = "";
  ufk_snap_id_str(e->build_id, id);
  if (base != SIZE_MAX) snprintf(at, sizeof at, ", inner byte %zu", base);
  snprintf(buf, len, "%s: build entry %zu (%s%s)", name, i, id, at);
  return buf;
}

static int check_order(const struct ufk_snap_entry *e, size_t k,
                       const char *where, struct ufk_snap_err *err) {
  const struct ufk_snap_frame *f = &e->frames[k], *p = &e->frames[k - 1];
  if (f->start_u < p->start_u + p->size_u)
    return fail(err,
                "%s: frame %zu starts at U 0x%llx, inside frame %zu, which "
                "ends at 0x%llx (overlapping or out of order)",
                where, k, (unsigned long long)f->start_u, k - 1,
                (unsigned long long)(p->start_u + p->size_u));
  if (f->start_c < p->start_c + p->size_c)
    return fail(err,
                "%s: frame %zu starts at C 0x%llx, inside frame %zu, which "
                "ends at 0x%llx (overlapping or out of order)",
                where, k, (unsigned long long)f->start_c, k - 1,
                (unsigned long long)(p->start_c + p->size_c));
  return 0;
}

static int check_frame(const struct ufk_snap_entry *e, size_t k,
                       const char *where, struct ufk_snap_err *err) {
  const struct ufk_snap_frame *f = &e->frames[k];
  if (f->size_u == 0 || f->size_c == 0 || f->size_u > INT32_MAX ||
      f->size_c > INT32_MAX || f->start_u > I64_MAX - f->size_u ||
      f->start_c > I64_MAX - f->size_c)
    return fail(err,
                "%s: frame %zu: StartU 0x%llx, StartC 0x%llx, SizeU %u, SizeC "
                "%u out of range",
                where, k, (unsigned long long)f->start_u,
                (unsigned long long)f->start_c, f->size_u, f->size_c);
  if (e->size && f->start_u + f->size_u > e->size)
    return fail(err,
                "%s: frame %zu ends at U 0x%llx, past the build's Size 0x%llx",
                where, k, (unsigned long long)(f->start_u + f->size_u),
                (unsigned long long)e->size);
  return k ? check_order(e, k, where, err) : 0;
}

int ufk_snap_check_entry(const struct ufk_snap_entry *e, size_t i, size_t base,
                         const char *name, struct ufk_snap_err *err) {
  char where[UFK_SNAP_UUID_STR + 256];
  entry_where(e, i, base, name, where, sizeof where);
  if (ufk_snap_is_nil(e->build_id))
    return fail(err, "%s: the build id is nil", where);
  if (e->codec > UFK_SNAP_CODEC_LZ4)
    return fail(err, "%s: Codec %u is unknown (0 none, 1 zstd, 2 lz4)", where,
                e->codec);
  if (e->codec == UFK_SNAP_CODEC_NONE && e->nframes)
    return fail(err, "%s: Codec 0 (none) with %zu frames", where, e->nframes);
  if (e->nframes > UFK_SNAP_MAX_FRAMES)
    return fail(err, "%s: %zu frames, more than %u", where, e->nframes,
                UFK_SNAP_MAX_FRAMES);
  if (e->size > I64_MAX)
    return fail(err, "%s: Size 0x%llx out of range", where,
                (unsigned long long)e->size);
  for (size_t k = 0; k < e->nframes; k++)
    if (check_frame(e, k, where, err) < 0) return -1;
  return 0;
}

static int by_id(const void *a, const void *b) {
  const struct ufk_snap_entry *x = *(const struct ufk_snap_entry *const *)a;
  const struct ufk_snap_entry *y = *(const struct ufk_snap_entry *const *)b;
  int c = memcmp(x->build_id, y->build_id, 16);
  return c ? c : (x < y ? -1 : x > y);
}

/* E2B keeps the last of two entries for one build; we refuse both. */
static int check_unique(const struct ufk_snap_header *h, const char *name,
                        struct ufk_snap_err *err) {
  const struct ufk_snap_entry **s = malloc(h->nentries * sizeof *s);
  if (!s) return fail(err, "%s: out of memory", name);
  for (size_t i = 0; i < h->nentries; i++)
    s[i] = &h->entries[i];
  qsort(s, h->nentries, sizeof *s, by_id);
  int rc = 0;
  for (size_t i = 1; i < h->nentries && rc == 0; i++)
    if (!memcmp(s[i - 1]->build_id, s[i]->build_id, 16)) {
      char id[UFK_SNAP_UUID_STR];
      ufk_snap_id_str(s[i]->build_id, id);
      rc = fail(err, "%s: build entries %zu and %zu both describe build %s",
                name, (size_t)(s[i - 1] - h->entries),
                (size_t)(s[i] - h->entries), id);
    }
  free(s);
  return rc;
}

int ufk_snap_check_entries(const struct ufk_snap_header *h, const char *name,
                           struct ufk_snap_err *err) {
  for (size_t i = 0; i < h->nentries; i++)
    if (ufk_snap_check_entry(&h->entries[i], i, SIZE_MAX, name, err) < 0)
      return -1;
  return h->nentries > 1 ? check_unique(h, name, err) : 0;
}

static int why(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  return -1;
}

static int zstd_decode(const void *src, size_t srclen, void *dst, size_t dstlen,
                       char *w, size_t wl) {
  /* Magic, then the Frame_Header_Descriptor, whose bit 2 is
   * Content_Checksum_flag (RFC 8878 3.1.1.1.1). */
  const uint8_t *p = src;
  if (srclen < 5 || ufk_le32(p) != ZSTD_MAGICNUMBER)
    return why(w, wl, "not a zstd frame (no magic 28 b5 2f fd)");
  if (!(p[4] >> 2 & 1))
    return why(w, wl, "the zstd frame has no content checksum");
  size_t c = ZSTD_findFrameCompressedSize(src, srclen);
  if (ZSTD_isError(c)) return why(w, wl, "zstd: %s", ZSTD_getErrorName(c));
  if (c != srclen)
    return why(w, wl, "the zstd frame ends at byte %zu of its %zu", c, srclen);
  ZSTD_DCtx *d = ZSTD_createDCtx();
  if (!d) return why(w, wl, "out of memory for a zstd decoder");
  size_t r = ZSTD_decompressDCtx(d, dst, dstlen, src, srclen);
  ZSTD_freeDCtx(d);
  if (ZSTD_isError(r)) return why(w, wl, "zstd: %s", ZSTD_getErrorName(r));
  if (r != dstlen)
    return why(w, wl, "the zstd frame decodes to %zu bytes, SizeU is %zu", r,
               dstlen);
  return 0;
}

/* src starts after the frame header, which took `head` bytes. */
static int lz4_run(LZ4F_dctx *d, const uint8_t *src, size_t srclen, size_t head,
                   uint8_t *dst, size_t dstlen, char *w, size_t wl) {
  size_t spos = 0, dpos = 0, ret = 1;
  uint8_t extra[64];
  while (ret != 0) {
    int over = dpos == dstlen;
    uint8_t *out = over ? extra : dst + dpos;
    size_t sl = srclen - spos, dl = over ? sizeof extra : dstlen - dpos;
    ret = LZ4F_decompress(d, out, &dl, src + spos, &sl, NULL);
    if (LZ4F_isError(ret))
      return why(w, wl, "lz4 near byte %zu: %s", head + spos,
                 LZ4F_getErrorName(ret));
    spos += sl;
    if (over && dl)
      return why(w, wl, "the lz4 frame decodes to more than SizeU %zu", dstlen);
    dpos += over ? 0 : dl;
    if (ret != 0 && sl == 0 && dl == 0)
      return why(w, wl, "the lz4 frame is cut short at byte %zu", head + spos);
  }
  if (dpos != dstlen)
    return why(w, wl, "the lz4 frame decodes to %zu bytes, SizeU is %zu", dpos,
               dstlen);
  if (spos != srclen)
    return why(w, wl, "the lz4 frame ends at byte %zu of its %zu", head + spos,
               head + srclen);
  return 0;
}

static int lz4_decode(const void *src, size_t srclen, void *dst, size_t dstlen,
                      char *w, size_t wl) {
  LZ4F_dctx *d;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
    return why(w, wl, "out of memory for an lz4 decoder");
  LZ4F_frameInfo_t fi;
  size_t n = srclen;
  size_t r = LZ4F_getFrameInfo(d, &fi, src, &n);
  int rc;
  if (LZ4F_isError(r))
    rc = why(w, wl, "not an lz4 frame: %s", LZ4F_getErrorName(r));
  else if (!fi.blockChecksumFlag && !fi.contentChecksumFlag)
    rc = why(w, wl, "the lz4 frame has neither block nor content checksums");
  else
    rc =
        lz4_run(d, (const uint8_t *)src + n, srclen - n, n, dst, dstlen, w, wl);
  LZ4F_freeDecompressionContext(d);
  return rc;
}

int ufk_snap_decode_frame(uint32_t codec, const void *src, size_t srclen,
                          void *dst, size_t dstlen, char *w, size_t wl) {
  if (codec == UFK_SNAP_CODEC_ZSTD)
    return zstd_decode(src, srclen, dst, dstlen, w, wl);
  if (codec == UFK_SNAP_CODEC_LZ4)
    return lz4_decode(src, srclen, dst, dstlen, w, wl);
  return why(w, wl, "codec %u has no decoder", codec);
}

static int zstd_encode(int level, const void *src, size_t len, void *out,
                       size_t cap, size_t *outlen) {
  ZSTD_CCtx *c = ZSTD_createCCtx();
  if (!c) return -1;
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  size_t r = ZSTD_compress2(c, out, cap, src, len);
  ZSTD_freeCCtx(c);
  if (ZSTD_isError(r)) return -1;
  *outlen = r;
  return 0;
}

/* E2B's data frames: FLG 0x70 (independent blocks, block checksums, no
 * content checksum), BD 0x70 (4 MiB blocks). */
static void lz4_prefs(LZ4F_preferences_t *p, int level) {
  memset(p, 0, sizeof *p);
  p->frameInfo.blockSizeID = LZ4F_max4MB;
  p->frameInfo.blockMode = LZ4F_blockIndependent;
  p->frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
  p->compressionLevel = level;
}

int ufk_snap_encode_frame(uint32_t codec, int level, const void *src,
                          size_t len, void **out, size_t *outlen) {
  LZ4F_preferences_t prefs;
  lz4_prefs(&prefs, level);
  size_t cap = codec == UFK_SNAP_CODEC_ZSTD
                   ? ZSTD_compressBound(len)
                   : LZ4F_compressFrameBound(len, &prefs);
  void *buf = malloc(cap);
  if (!buf || (codec != UFK_SNAP_CODEC_ZSTD && codec != UFK_SNAP_CODEC_LZ4)) {
    free(buf);
    return -1;
  }
  int rc = 0;
  if (codec == UFK_SNAP_CODEC_ZSTD) {
    rc = zstd_encode(level, src, len, buf, cap, outlen);
  } else {
    size_t r = LZ4F_compressFrame(buf, cap, src, len, &prefs);
    rc = LZ4F_isError(r) ? -1 : 0;
    *outlen = r;
  }
  if (rc < 0) {
    free(buf);
    return -1;
  }
  *out = buf;
  return 0;
}

void ufk_snap_entry_free(struct ufk_snap_entry *e) {
  free(e->frames);
  e->frames = NULL;
  e->nframes = 0;
}

int ufk_snap_entry_copy(const struct ufk_snap_entry *e,
                        struct ufk_snap_entry *out) {
  *out = *e;
  out->frames = NULL;
  if (!e->nframes) return 0;
  out->frames = malloc(e->nframes * sizeof *out->frames);
  if (!out->frames) return -1;
  memcpy(out->frames, e->frames, e->nframes * sizeof *out->frames);
  return 0;
}

/* Marks the frames of e that [u, u + len) overlaps. */
static void mark(const struct ufk_snap_entry *e, uint64_t u, uint64_t len,
                 uint8_t *keep) {
  size_t lo = 0, hi = e->nframes;
  /* The first frame ending after u. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e->frames[mid].start_u + e->frames[mid].size_u <= u)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (; lo < e->nframes && e->frames[lo].start_u < u + len; lo++)
    keep[lo] = 1;
}

/* Keeps the marked frames of e; returns whether any mapping used it. */
static int trim_entry(const struct ufk_snap_header *h, struct ufk_snap_entry *e,
                      uint8_t *keep) {
  int used = 0;
  memset(keep, 0, e->nframes);
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    if (memcmp(m->build_id, e->build_id, 16)) continue;
    used = 1;
    mark(e, m->storage_offset, m->length, keep);
  }
  if (!used) return 0;
  size_t o = 0;
  for (size_t k = 0; k < e->nframes; k++)
    if (keep[k]) e->frames[o++] = e->frames[k];
  e->nframes = o;
  return 1;
}

int ufk_snap_trim(struct ufk_snap_header *h) {
  size_t most = 1, o = 0;
  for (size_t i = 0; i < h->nentries; i++)
    if (h->entries[i].nframes > most) most = h->entries[i].nframes;
  uint8_t *keep = malloc(most);
  if (!keep) return -1;
  for (size_t i = 0; i < h->nentries; i++) {
    struct ufk_snap_entry *e = &h->entries[i];
    int self = !memcmp(e->build_id, h->build_id, 16);
    /* An unreferenced self entry keeps its whole table. */
    if (trim_entry(h, e, keep) || self)
      h->entries[o++] = *e;
    else
      ufk_snap_entry_free(e);
  }
  h->nentries = o;
  free(keep);
  return 0;
}

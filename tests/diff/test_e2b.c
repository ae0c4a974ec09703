/* Unit tests of E2B header versions 4 and 5: the container, build entries
 * and frame tables, V4 records and V5 varint columns (round trips and every
 * refusal with its message).  test_e2b_frames.c tests the codecs, frame
 * lookup, trimming and entry resolution. */
#include <check.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "e2b_sample.h"

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void same(const struct ufk_snap_header *a,
                 const struct ufk_snap_header *b) {
  ck_assert_uint_eq(a->version, b->version);
  ck_assert_uint_eq(a->nmappings, b->nmappings);
  for (size_t i = 0; i < a->nmappings; i++) {
    ck_assert_uint_eq(a->mappings[i].offset, b->mappings[i].offset);
    ck_assert_uint_eq(a->mappings[i].length, b->mappings[i].length);
    ck_assert_uint_eq(a->mappings[i].storage_offset,
                      b->mappings[i].storage_offset);
    ck_assert_mem_eq(a->mappings[i].build_id, b->mappings[i].build_id, 16);
  }
  ck_assert_uint_eq(a->nentries, b->nentries);
  for (size_t i = 0; i < a->nentries; i++) {
    const struct ufk_snap_entry *x = &a->entries[i], *y = &b->entries[i];
    ck_assert_mem_eq(x->build_id, y->build_id, 16);
    ck_assert_mem_eq(x->checksum, y->checksum, 32);
    ck_assert_uint_eq(x->size, y->size);
    ck_assert_uint_eq(x->codec, y->codec);
    ck_assert_uint_eq(x->nframes, y->nframes);
    if (x->nframes)
      ck_assert_mem_eq(x->frames, y->frames, x->nframes * sizeof *x->frames);
  }
}

START_TEST(round_trip) {
  unsigned version = _i ? 5 : 4;
  struct ufk_snap_header h, back;
  struct ufk_snap_err err;
  uint8_t *buf;
  size_t len;
  sample(&h, version);
  ck_assert_int_eq(ufk_snap_validate(&h, "h", &err), 0);
  ck_assert_int_eq(ufk_snap_encode(&h, &buf, &len, &err), 0);
  /* Metadata, Flags 0, U, then an LZ4 frame (magic 04 22 4d 18). */
  ck_assert_uint_eq(buf[0], version);
  ck_assert_uint_eq(buf[64], 0);
  ck_assert_mem_eq(buf + 69, "\x04\x22\x4d\x18", 4);
  ck_assert_int_eq(ufk_snap_parse(buf, len, "h", &back, &err), 0);
  same(&h, &back);
  ck_assert_uint_eq(ufk_snap_granule(&back), K4);
  ufk_snap_free(&back);
  free(buf);
  ufk_snap_free(&h);
}
END_TEST

/* V5 skips nil runs and writes storage as signed deltas: B's storage page
 * 2 follows A's 0, then A's 4 (and back down would be negative). */
START_TEST(v5_negative_storage_delta) {
  struct ufk_snap_header h, back;
  struct ufk_snap_err err;
  uint8_t *buf;
  size_t len;
  sample(&h, 5);
  h.mappings[2].storage_offset = 40 * K4; /* B high, then A low: negative */
  ck_assert_int_eq(ufk_snap_encode(&h, &buf, &len, &err), 0);
  ck_assert_int_eq(ufk_snap_parse(buf, len, "h", &back, &err), 0);
  same(&h, &back);
  ufk_snap_free(&back);
  free(buf);
  ufk_snap_free(&h);
}
END_TEST

/* ---- the container and inner block byte by byte ---- */

struct inner {
  uint8_t b[4096];
  size_t n;
};

static void u32(struct inner *in, uint32_t v) {
  put32(in->b + in->n, v);
  in->n += 4;
}
static void u64(struct inner *in, uint64_t v) {
  put64(in->b + in->n, v);
  in->n += 8;
}
static void raw(struct inner *in, const void *p, size_t n) {
  memcpy(in->b + in->n, p, n);
  in->n += n;
}
static void id(struct inner *in, int tag) {
  memset(in->b + in->n, tag, 16);
  in->n += 16;
}
static void uv(struct inner *in, uint64_t v) {
  do {
    in->b[in->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
}

/* An entry with n frames follows (frame() each). */
static void entry(struct inner *in, int tag, uint64_t size, uint32_t codec,
                  uint32_t n) {
  id(in, tag);
  u64(in, size);
  uint8_t sum[32] = {0};
  raw(in, sum, 32);
  u32(in, codec);
  u32(in, n);
}
static void frame(struct inner *in, uint64_t u, uint64_t c, uint32_t su,
                  uint32_t sc) {
  u64(in, u);
  u64(in, c);
  u32(in, su);
  u32(in, sc);
}
static void mapping(struct inner *in, uint64_t off, uint64_t len, int tag,
                    uint64_t storage) {
  u64(in, off);
  u64(in, len);
  id(in, tag);
  u64(in, storage);
}

/* The whole file: metadata (16 KiB of memory, 4 KiB blocks), flags, U and
 * the inner block as an LZ4 frame. */
static uint8_t file[8192];
static size_t make(unsigned version, const struct inner *in, uint32_t u) {
  memset(file, 0, 69);
  put64(file, version);
  put64(file + 8, K4);
  put64(file + 16, 4 * K4);
  memset(file + 32, 0xaa, 16);
  put32(file + 65, u);
  return 69 +
         LZ4F_compressFrame(file + 69, sizeof file - 69, in->b, in->n, NULL);
}

static const char *refusal(unsigned version, const struct inner *in) {
  static struct ufk_snap_err err;
  struct ufk_snap_header h;
  size_t len = make(version, in, (uint32_t)in->n);
  err.msg[0] = 0;
  if (ufk_snap_parse(file, len, "f", &h, &err) == 0) {
    ufk_snap_free(&h);
    return "";
  }
  return err.msg;
}

/* One good A entry (frames at U 0 and 8K) and a V4 mapping section. */
static void v4_good(struct inner *in) {
  in->n = 0;
  u32(in, 1);
  entry(in, 0xaa, 4 * K4, 1, 2);
  frame(in, 0, 0, 2 * K4, 10);
  frame(in, 2 * K4, 10, 2 * K4, 10);
  u32(in, 2);
  mapping(in, 0, 2 * K4, 0xaa, 0);
  mapping(in, 2 * K4, 2 * K4, 0, 0);
}

START_TEST(v4_good_and_empty) {
  struct inner in;
  v4_good(&in);
  ck_assert_str_eq(refusal(4, &in), "");
  /* No mappings: one run of the header's own build. */
  in.n = 0;
  u32(&in, 0);
  u32(&in, 0);
  struct ufk_snap_header h;
  struct ufk_snap_err err;
  size_t len = make(4, &in, (uint32_t)in.n);
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), 0);
  ck_assert_uint_eq(h.nmappings, 1);
  ck_assert_uint_eq(h.mappings[0].length, 4 * K4);
  ck_assert_uint_eq(h.mappings[0].build_id[0], 0xaa);
  ufk_snap_free(&h);
  /* V5 with no entries: all nil. */
  in.n = 0;
  u32(&in, 0);
  u32(&in, 0);
  u32(&in, 0);
  len = make(5, &in, (uint32_t)in.n);
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), 0);
  ck_assert_uint_eq(h.nmappings, 1);
  ck_assert(ufk_snap_is_nil(h.mappings[0].build_id));
  ufk_snap_free(&h);
}
END_TEST

struct bad {
  const char *what;
  unsigned version;
  void (*make)(struct inner *);
  const char *msg;
};

static void b_nbuilds(struct inner *in) {
  in->n = 0;
  u32(in, 1000);
}
static void b_codec0_frames(struct inner *in) {
  v4_good(in);
  put32(in->b + 4 + 56, 0);
}
static void b_codec3(struct inner *in) {
  v4_good(in);
  put32(in->b + 4 + 56, 3);
}
static void b_too_many_frames(struct inner *in) {
  v4_good(in);
  put32(in->b + 4 + 60, UFK_SNAP_MAX_FRAMES + 1);
}
static void b_size_u0(struct inner *in) {
  v4_good(in);
  put32(in->b + 4 + 64 + 16, 0);
}
static void b_negative_start(struct inner *in) {
  v4_good(in);
  put64(in->b + 4 + 64, UINT64_MAX);
}
static void b_overlap_c(struct inner *in) {
  v4_good(in);
  put64(in->b + 4 + 64 + 24 + 8, 9);
}
static void b_past_size(struct inner *in) {
  v4_good(in);
  put64(in->b + 4 + 16, 3 * K4);
}
static void b_nil_entry(struct inner *in) {
  v4_good(in);
  memset(in->b + 4, 0, 16);
}
static void b_duplicate(struct inner *in) {
  in->n = 0;
  u32(in, 2);
  entry(in, 0xaa, 0, 0, 0);
  entry(in, 0xaa, 0, 0, 0);
  u32(in, 0);
}
static void b_nmappings(struct inner *in) {
  v4_good(in);
  put32(in->b + 4 + 64 + 48, 3);
}
static void b_left_over(struct inner *in) {
  v4_good(in);
  u32(in, 0);
}
static void b_v4_gap(struct inner *in) {
  v4_good(in);
  put64(in->b + 4 + 64 + 48 + 4 + 40, 3 * K4);
}
/* V5: table A; entries given as offset, length, storage delta, index. */
static void v5(struct inner *in, uint32_t m, uint32_t n, const uint64_t *c) {
  in->n = 0;
  u32(in, 0);
  u32(in, m);
  for (uint32_t i = 0; i < m; i++)
    id(in, 0xa0 + (int)i);
  u32(in, n);
  for (uint32_t k = 0; k < 4 * n; k++)
    uv(in, c[(k % n) * 4 + k / n]);
}
static void b_v5_index(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){0, 1, 0, 1});
}
static void b_v5_length0(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){0, 0, 0, 0});
}
static void b_v5_overlap(struct inner *in) {
  v5(in, 1, 2, (const uint64_t[]){1, 2, 0, 0, 1, 1, 4, 0});
}
static void b_v5_past(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){2, 3, 0, 0});
}
static void b_v5_negative(struct inner *in) {
  v5(in, 1, 2, (const uint64_t[]){0, 1, 2, 0, 1, 1, 5, 0});
}
static void b_v5_delta(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){1ull << 32, 1, 0, 0});
}
static void b_v5_overflow(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){0, 1, 0, 0});
  /* The offset varint as ten bytes whose last is 2. */
  size_t at = 4 + 4 + 16 + 4;
  memmove(in->b + at + 10, in->b + at + 1, in->n - at - 1);
  memset(in->b + at, 0xff, 9);
  in->b[at + 9] = 2;
  in->n += 9;
}
static void b_v5_short(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){0, 1, 0, 0});
  in->b[in->n - 1] = 0x80;
}
static void b_v5_m(struct inner *in) {
  in->n = 0;
  u32(in, 0);
  u32(in, 70000);
}
static void b_v5_nil_table(struct inner *in) {
  v5(in, 1, 1, (const uint64_t[]){0, 1, 0, 0});
  memset(in->b + 8, 0, 16);
}

#define E0                                                                     \
  "f: build entry 0 (aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa, inner byte 4)"
static const struct bad bad[] = {
    {"nBuilds", 4, b_nbuilds,
     "f: nBuilds (inner byte 0) is 1000, more than the 0 bytes left hold"},
    {"codec 0 with frames", 4, b_codec0_frames,
     E0 ": Codec 0 (none) with 2 frames"},
    {"codec 3", 4, b_codec3, E0 ": Codec 3 is unknown (0 none, 1 zstd, 2 lz4)"},
    {"too many frames", 4, b_too_many_frames,
     E0 ": 1048577 frames, more than 1048576 or than the 132 bytes left hold"},
    {"SizeU 0", 4, b_size_u0,
     "f: build entry 0 (aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa), frame 0 (inner "
     "byte 68): StartU 0, StartC 0, SizeU 0, SizeC 10: starts must not be "
     "negative and sizes must be positive"},
    {"negative StartU", 4, b_negative_start,
     "f: build entry 0 (aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa), frame 0 (inner "
     "byte 68): StartU -1, StartC 0, SizeU 8192, SizeC 10: starts must not be "
     "negative and sizes must be positive"},
    {"overlapping in C", 4, b_overlap_c,
     E0 ": frame 1 starts at C 0x9, inside frame 0, which ends at 0xa "
        "(overlapping or out of order)"},
    {"frame past Size", 4, b_past_size,
     E0 ": frame 1 ends at U 0x4000, past the build's Size 0x3000"},
    {"nil entry", 4, b_nil_entry,
     "f: build entry 0 (00000000-0000-0000-0000-000000000000, inner byte 4): "
     "the build id is nil"},
    {"duplicate", 4, b_duplicate,
     "f: build entries 0 and 1 both describe build "
     "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"},
    {"nMappings", 4, b_nmappings,
     "f: nMappings (inner byte 116) is 3, more than the 80 bytes left hold"},
    {"left over", 4, b_left_over,
     "f: 4 bytes left over after the mapping section, from inner byte 200 of "
     "204"},
    {"V4 mapping gap", 4, b_v4_gap,
     "f: mapping 1 (inner byte 160): Offset 0x3000 leaves a gap after mapping "
     "0, which ends at 0x2000"},
    {"V5 index", 5, b_v5_index,
     "f: V5 build column, entry 0 (inner byte 31): index past the table of "
     "builds: 1"},
    {"V5 length 0", 5, b_v5_length0,
     "f: V5 length column, entry 0 (inner byte 29): length must be 1 to "
     "2^32-1, is 0"},
    {"V5 overlap", 5, b_v5_overlap,
     "f: V5 entry 1: starts at page 2, inside the previous entry, which ends "
     "at page 3 (overlap)"},
    {"V5 past Size", 5, b_v5_past,
     "f: V5 entry 0: pages [2, 5) run past the 4 pages of the metadata Size"},
    {"V5 negative storage", 5, b_v5_negative,
     "f: V5 storage column, entry 1 (inner byte 33): running storage page "
     "leaves [0, 2^32-1] at delta 18446744073709551613"},
    {"V5 offset delta", 5, b_v5_delta,
     "f: V5 offset column, entry 0 (inner byte 28): delta exceeds 2^32-1 "
     "pages: 4294967296"},
    {"V5 varint overflow", 5, b_v5_overflow,
     "f: V5 offset column, entry 0 (inner byte 28): varint overflows 64 bits"},
    {"V5 varint cut short", 5, b_v5_short,
     "f: V5 build column, entry 0 (inner byte 31): varint cut short by the "
     "end of the block"},
    {"V5 M", 5, b_v5_m,
     "f: V5 build count M (inner byte 4) is 70000: more than 65535 or than "
     "the 0 bytes left hold"},
    {"V5 nil in the table", 5, b_v5_nil_table,
     "f: V5 build table entry 0 (inner byte 8) is nil"},
};

START_TEST(corrupt_inner) {
  struct inner in;
  bad[_i].make(&in);
  const char *got = refusal(bad[_i].version, &in);
  if (strcmp(got, bad[_i].msg))
    ck_abort_msg("%s: got \"%s\", want \"%s\"", bad[_i].what, got, bad[_i].msg);
}
END_TEST

START_TEST(corrupt_container) {
  struct inner in;
  struct ufk_snap_header h;
  struct ufk_snap_err err;
  v4_good(&in);
  size_t len = make(4, &in, (uint32_t)in.n + 1);
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg,
                   "f: the LZ4 frame decodes to 200 bytes, but U (byte 65) "
                   "is 201");
  len = make(4, &in, (uint32_t)in.n - 1);
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg, "f: the LZ4 frame decodes to more than the 199 "
                            "bytes of U (byte 65)");
  len = make(4, &in, UFK_SNAP_INNER_MAX + 1);
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg, "f: U (byte 65) is 268435457, more than the "
                            "268435456 bytes allowed");
  len = make(4, &in, (uint32_t)in.n);
  memcpy(file + len, "xyz", 3);
  ck_assert_int_eq(ufk_snap_parse(file, len + 3, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg, "f: 3 bytes after the LZ4 frame, which ends at "
                            "byte 158");
  ck_assert_int_eq(ufk_snap_parse(file, len - 5, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg, "f: the LZ4 frame of the inner block ends early, "
                            "at byte 153 (truncated)");
  /* Our writer's frames carry block and content checksums. */
  uint8_t *buf;
  size_t blen;
  sample(&h, 4);
  ck_assert_int_eq(ufk_snap_encode(&h, &buf, &blen, &err), 0);
  ufk_snap_free(&h);
  buf[blen - 10] ^= 1;
  ck_assert_int_eq(ufk_snap_parse(buf, blen, "f", &h, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "f: the LZ4 frame of the inner block "
                                        "(byte 69) is corrupt"));
  free(buf);
  len = make(4, &in, (uint32_t)in.n);
  file[64] = 1;
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), -1);
  ck_assert_str_eq(err.msg, "f: Flags (byte 64) 0x01 has bit 0 "
                            "(IncompletePendingUpload) set: the build's data "
                            "is not in storage yet");
  file[64] = 0x80; /* undefined bits are ignored */
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), 0);
  ufk_snap_free(&h);
  put64(file, 0x10004); /* so are Version's upper bits from 4 on */
  ck_assert_int_eq(ufk_snap_parse(file, len, "f", &h, &err), 0);
  ck_assert_uint_eq(ufk_snap_format(&h), 4);
  ufk_snap_free(&h);
}
END_TEST

int main(void) {
  Suite *s = suite_create("e2b");
  TCase *t = tcase_create("headers");
  tcase_add_loop_test(t, round_trip, 0, 2);
  tcase_add_test(t, v5_negative_storage_delta);
  tcase_add_test(t, v4_good_and_empty);
  tcase_add_loop_test(t, corrupt_inner, 0, sizeof bad / sizeof bad[0]);
  tcase_add_test(t, corrupt_container);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

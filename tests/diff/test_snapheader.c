/* Unit tests of the snapshot header: strict parsing with precise messages,
 * loading and writing files, lookup (merge, normalisation and building the
 * next generation are in test_snapheader_merge.c). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkrun.h"
#include "snaptest.h"

#define MAXM 32

/* A header being put together byte by byte. */
struct hb {
  uint8_t buf[64 + 40 * MAXM + 64];
  size_t len;
};

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

void id_of(uint8_t id[16], int tag) {
  memset(id, tag, 16);
}

static void meta(struct hb *h, uint64_t version, uint64_t bs, uint64_t size) {
  memset(h->buf, 0, sizeof h->buf);
  put64(h->buf, version);
  put64(h->buf + 8, bs);
  put64(h->buf + 16, size);
  put64(h->buf + 24, 7);
  memset(h->buf + 32, 0xaa, 16);
  memset(h->buf + 48, 0xbb, 16);
  h->len = 64;
}

static void map(struct hb *h, uint64_t off, uint64_t len, int tag,
                uint64_t storage) {
  uint8_t *p = h->buf + h->len;
  put64(p, off);
  put64(p + 8, len);
  memset(p + 16, tag, 16);
  put64(p + 32, storage);
  h->len += 40;
}

/* Parses h and returns the error message ("" if it parsed). */
static const char *parse_err(const struct hb *h) {
  static struct ufk_snap_err err;
  struct ufk_snap_header out;
  err.msg[0] = 0;
  if (ufk_snap_parse(h->buf, h->len, "t.hdr", &out, &err) == 0) {
    ufk_snap_free(&out);
    return "";
  }
  return err.msg;
}

/* Three mappings over 16 KiB: A (8 KiB), nil, B. */
static void good3(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 2 * K4, 0xa1, 0);
  map(h, 2 * K4, K4, 0, 0);
  map(h, 3 * K4, K4, 0xb2, 4 * K4);
}

START_TEST(good_headers) {
  struct hb h;
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  good3(&h);
  ck_assert_int_eq(ufk_snap_parse(h.buf, h.len, "t.hdr", &out, &err), 0);
  ck_assert_uint_eq(out.version, 3);
  ck_assert_uint_eq(out.block_size, K4);
  ck_assert_uint_eq(out.size, 4 * K4);
  ck_assert_uint_eq(out.generation, 7);
  ck_assert_uint_eq(out.build_id[0], 0xaa);
  ck_assert_uint_eq(out.base_build_id[15], 0xbb);
  ck_assert_uint_eq(out.nmappings, 3);
  ck_assert_uint_eq(out.mappings[2].storage_offset, 4 * K4);
  ck_assert(ufk_snap_is_nil(out.mappings[1].build_id));
  ufk_snap_free(&out);
  for (uint64_t v = 1; v <= 3; v++) {
    meta(&h, v, M2, 4 * M2);
    map(&h, 0, M2, 0xa1, 0);
    map(&h, M2, 3 * M2, 0, 12345);
    ck_assert_str_eq(parse_err(&h), "");
  }
}
END_TEST

START_TEST(no_mappings_means_whole_build) {
  struct hb h;
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  meta(&h, 1, K4, 8 * K4);
  ck_assert_int_eq(ufk_snap_parse(h.buf, h.len, "t.hdr", &out, &err), 0);
  ck_assert_uint_eq(out.nmappings, 1);
  ck_assert_uint_eq(out.mappings[0].offset, 0);
  ck_assert_uint_eq(out.mappings[0].length, 8 * K4);
  ck_assert_uint_eq(out.mappings[0].storage_offset, 0);
  ck_assert_mem_eq(out.mappings[0].build_id, out.build_id, 16);
  ufk_snap_free(&out);
}
END_TEST

struct bad {
  const char *what;
  void (*make)(struct hb *);
  const char *msg;
};

static void b_short(struct hb *h) {
  meta(h, 3, K4, K4);
  h->len = 10;
}
static void b_empty(struct hb *h) {
  h->len = 0;
}
static void b_trailing(struct hb *h) {
  good3(h);
  h->len += 3;
}
static void b_partial(struct hb *h) {
  meta(h, 3, K4, K4);
  h->len += 20;
}
static void b_version0(struct hb *h) {
  meta(h, 0, K4, K4);
}
static void b_version4(struct hb *h) {
  meta(h, 4, K4, K4);
}
static void b_version6(struct hb *h) {
  meta(h, 6, K4, K4);
}
static void b_version3_upper(struct hb *h) {
  meta(h, 0x10003, K4, K4);
}
static void b_bs8k(struct hb *h) {
  meta(h, 3, 8192, 8192);
}
static void b_bs0(struct hb *h) {
  meta(h, 3, 0, K4);
}
static void b_size0(struct hb *h) {
  meta(h, 3, K4, 0);
}
static void b_size_unaligned(struct hb *h) {
  meta(h, 3, M2, M2 + K4);
}
static void b_gap(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, K4, 0xa1, 0);
  map(h, 2 * K4, 2 * K4, 0xa1, K4);
}
static void b_overlap(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 2 * K4, 0xa1, 0);
  map(h, K4, 3 * K4, 0xb2, 0);
}
static void b_unsorted(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 2 * K4, 2 * K4, 0xa1, 0);
  map(h, 0, 2 * K4, 0xb2, 0);
}
static void b_unsorted_later(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 2 * K4, 0xa1, 0);
  map(h, 2 * K4, K4, 0xb2, 0);
  map(h, K4, K4, 0xb2, K4);
}
static void b_offset_misaligned(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, K4, 0xa1, 0);
  map(h, K4 + 512, 2 * K4, 0xa1, K4);
}
static void b_length_misaligned(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, K4 + 1, 0xa1, 0);
}
static void b_length_misaligned_2m(struct hb *h) {
  meta(h, 3, M2, 2 * M2);
  map(h, 0, K4, 0xa1, 0);
}
static void b_zero_length(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 4 * K4, 0xa1, 0);
  map(h, 4 * K4, 0, 0xa1, 0);
}
static void b_short_cover(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 3 * K4, 0xa1, 0);
}
static void b_past_size(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 5 * K4, 0xa1, 0);
}
static void b_not_at_zero(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, K4, 3 * K4, 0xa1, 0);
}
static void b_storage_misaligned(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 4 * K4, 0xa1, 100);
}
static void b_storage_overflow(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, 4 * K4, 0xa1, UINT64_MAX - K4 + 1);
}
static void b_length_wraps(struct hb *h) {
  meta(h, 3, K4, 4 * K4);
  map(h, 0, K4, 0xa1, 0);
  map(h, K4, UINT64_MAX - K4 + 1, 0, 0);
}

static void b_too_many(struct hb *h) {
  meta(h, 3, K4, 2 * K4);
  map(h, 0, K4, 0xa1, 0);
  map(h, K4, K4, 0xa1, K4);
  map(h, 2 * K4, K4, 0xa1, 2 * K4);
}

static const struct bad bad[] = {
    {"short", b_short, "t.hdr: 10 bytes, shorter than the 64-byte metadata"},
    {"empty", b_empty, "t.hdr: 0 bytes, shorter than the 64-byte metadata"},
    {"trailing bytes", b_trailing,
     "t.hdr: 187 bytes: mapping 3 (byte 184) is partial, 3 of 40 bytes"},
    {"partial record", b_partial,
     "t.hdr: 84 bytes: mapping 0 (byte 64) is partial, 20 of 40 bytes"},
    {"version 0", b_version0,
     "t.hdr: metadata Version (byte 0) is 0, expected 1 to 5"},
    {"version 4 without its container", b_version4,
     "t.hdr: 64 bytes, shorter than the 69 bytes of metadata, Flags and U of "
     "a V4 header"},
    {"version 6", b_version6,
     "t.hdr: metadata Version (byte 0) is 6, expected 1 to 5"},
    {"version 3 with upper bits", b_version3_upper,
     "t.hdr: metadata Version (byte 0) is 65539, expected 1 to 5"},
    {"block size 8192", b_bs8k,
     "t.hdr: metadata BlockSize (byte 8) is 8192, expected 4096 or 2097152"},
    {"block size 0", b_bs0,
     "t.hdr: metadata BlockSize (byte 8) is 0, expected 4096 or 2097152"},
    {"more mappings than blocks", b_too_many,
     "t.hdr: 3 mappings, more than the 2 blocks of the metadata Size"},
    {"size 0", b_size0, "t.hdr: metadata Size (byte 16) is 0"},
    {"size not a block multiple", b_size_unaligned,
     "t.hdr: metadata Size (byte 16) 2101248 is not a multiple of the block "
     "size 2097152"},
    {"gap", b_gap,
     "t.hdr: mapping 1 (byte 104): Offset 0x2000 leaves a gap after mapping "
     "0, which ends at 0x1000"},
    {"overlap", b_overlap,
     "t.hdr: mapping 1 (byte 104): Offset 0x1000 overlaps mapping 0, which "
     "ends at 0x2000"},
    {"unsorted", b_unsorted,
     "t.hdr: mapping 0 (byte 64): Offset 0x2000, but the first mapping must "
     "start at 0"},
    {"unsorted later", b_unsorted_later,
     "t.hdr: mapping 2 (byte 144): Offset 0x1000 is below the Offset 0x2000 "
     "of mapping 1 (not sorted)"},
    {"misaligned offset", b_offset_misaligned,
     "t.hdr: mapping 1 (byte 104): Offset 0x1200 is not a multiple of the "
     "block size 4096"},
    {"misaligned length", b_length_misaligned,
     "t.hdr: mapping 0 (byte 64): Length 0x1001 is not a multiple of the "
     "block size 4096"},
    {"4 KiB length under 2 MiB blocks", b_length_misaligned_2m,
     "t.hdr: mapping 0 (byte 64): Length 0x1000 is not a multiple of the "
     "block size 2097152"},
    {"zero length", b_zero_length, "t.hdr: mapping 1 (byte 104): Length is 0"},
    {"not covering Size", b_short_cover,
     "t.hdr: the 1 mappings end at 0x3000 and do not cover the metadata Size "
     "0x4000"},
    {"past Size", b_past_size,
     "t.hdr: mapping 0 (byte 64): Offset 0x0 + Length 0x5000 runs past the "
     "metadata Size 0x4000"},
    {"first not at 0", b_not_at_zero,
     "t.hdr: mapping 0 (byte 64): Offset 0x1000, but the first mapping must "
     "start at 0"},
    {"misaligned storage offset", b_storage_misaligned,
     "t.hdr: mapping 0 (byte 64): BuildStorageOffset 0x64 is not a multiple "
     "of 4096"},
    {"storage offset overflow", b_storage_overflow,
     "t.hdr: mapping 0 (byte 64): BuildStorageOffset 0xfffffffffffff000 + "
     "Length 0x4000 overflows"},
    {"length wraps around", b_length_wraps,
     "t.hdr: mapping 1 (byte 104): Offset 0x1000 + Length 0xfffffffffffff000 "
     "runs past the metadata Size 0x4000"},
};

START_TEST(corrupt_headers) {
  struct hb h;
  bad[_i].make(&h);
  const char *got = parse_err(&h);
  if (strcmp(got, bad[_i].msg))
    ck_abort_msg("%s: got \"%s\", want \"%s\"", bad[_i].what, got, bad[_i].msg);
}
END_TEST

static char tmpdir[64];

static void make_tmp(void) {
  strcpy(tmpdir, "/tmp/snaphdr-test.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmp(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(load_errors) {
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  char path[128], want[256];
  snprintf(path, sizeof path, "%s/missing.header", tmpdir);
  ck_assert_int_eq(ufk_snap_load(path, &out, &err), -1);
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
           path);
  ck_assert_str_eq(err.msg, want);
  ck_assert_int_eq(ufk_snap_load(tmpdir, &out, &err), -1);
  snprintf(want, sizeof want, "%s: not a readable regular file: %s", tmpdir,
           "Invalid argument");
  ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(load_and_write_round_trip) {
  struct hb h;
  struct ufk_snap_header a, b;
  struct ufk_snap_err err;
  char path[128];
  good3(&h);
  ck_assert_int_eq(ufk_snap_parse(h.buf, h.len, "t.hdr", &a, &err), 0);
  snprintf(path, sizeof path, "%s/h", tmpdir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ufk_snap_write_fd(&a, fd, path, &err), 0);
  close(fd);
  ck_assert_int_eq(ufk_snap_load(path, &b, &err), 0);
  ck_assert_uint_eq(ufk_snap_serial_size(&b), h.len);
  uint8_t out[sizeof h.buf];
  ufk_snap_serialise(&b, out);
  ck_assert_mem_eq(out, h.buf, h.len);
  ufk_snap_free(&a);
  ufk_snap_free(&b);
}
END_TEST

/* The checks the plugin and the tool make on each build's diff file. */
START_TEST(build_file_checks) {
  struct hb h;
  struct ufk_snap_header hd;
  struct ufk_snap_err err;
  struct ufk_snap_build *b;
  size_t nb;
  good3(&h);
  ck_assert_int_eq(ufk_snap_parse(h.buf, h.len, "t.hdr", &hd, &err), 0);
  ck_assert_int_eq(ufk_snap_builds(&hd, &b, &nb), 0);
  ck_assert_uint_eq(nb, 2);
  ck_assert_uint_eq(b[0].id[0], 0xa1);
  ck_assert_uint_eq(b[0].need, 2 * K4);
  ck_assert_uint_eq(b[1].need, 5 * K4);
  ck_assert_uint_eq(b[1].need_entry, 2);
  ck_assert_uint_eq(b[1].first_entry, 2);
  ck_assert_uint_eq(b[1].bytes, K4);
  ck_assert_int_eq(
      ufk_snap_check_build_size(&hd, &b[1], 5 * K4, "t.hdr", "B", &err), 0);
  ck_assert_int_eq(
      ufk_snap_check_build_size(&hd, &b[1], 5 * K4 - 1, "t.hdr", "B", &err),
      -1);
  ck_assert_str_eq(err.msg,
                   "B: 20479 bytes, too short for build "
                   "b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2: mapping 2 of t.hdr "
                   "reads 0x1000 bytes at storage offset 0x4000 (needs 20480 "
                   "bytes)");
  ck_assert_int_eq(ufk_snap_check_build_size(&hd, &b[0], 0, "t.hdr",
                                             "/missing/memfile", &err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "/missing/memfile: 0 bytes"));
  uint32_t idx[3];
  ufk_snap_build_index(&hd, b, nb, idx);
  ck_assert_uint_eq(idx[0], 0);
  ck_assert_uint_eq(idx[1], UFK_SNAP_NO_BUILD);
  ck_assert_uint_eq(idx[2], 1);
  free(b);
  ufk_snap_free(&hd);
}
END_TEST

START_TEST(lookup_boundaries) {
  struct hb h;
  struct ufk_snap_header hd;
  struct ufk_snap_err err;
  good3(&h);
  ck_assert_int_eq(ufk_snap_parse(h.buf, h.len, "t.hdr", &hd, &err), 0);
  ck_assert_int_eq(ufk_snap_find(&hd, 0), 0);
  ck_assert_int_eq(ufk_snap_find(&hd, 2 * K4 - 1), 0);
  ck_assert_int_eq(ufk_snap_find(&hd, 2 * K4), 1);
  ck_assert_int_eq(ufk_snap_find(&hd, 3 * K4 - 1), 1);
  ck_assert_int_eq(ufk_snap_find(&hd, 3 * K4), 2);
  ck_assert_int_eq(ufk_snap_find(&hd, 4 * K4 - 1), 2);
  ck_assert_int_eq(ufk_snap_find(&hd, 4 * K4), -1);
  ck_assert_int_eq(ufk_snap_find(&hd, UINT64_MAX), -1);
  ufk_snap_free(&hd);
}
END_TEST

START_TEST(lookup_many) {
  /* 1000 one-block mappings: every block finds its own. */
  enum { N = 1000 };
  struct ufk_snap_mapping m[N];
  for (int i = 0; i < N; i++)
    m[i] = (struct ufk_snap_mapping){.offset = i * K4, .length = K4};
  struct ufk_snap_header hd = {.version = 3,
                               .block_size = K4,
                               .size = N * K4,
                               .nmappings = N,
                               .mappings = m};
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(ufk_snap_find(&hd, i * K4), i);
    ck_assert_int_eq(ufk_snap_find(&hd, i * K4 + K4 - 1), i);
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("snapheader");
  TCase *t = tcase_create("parse");
  tcase_add_test(t, good_headers);
  tcase_add_test(t, no_mappings_means_whole_build);
  tcase_add_loop_test(t, corrupt_headers, 0, sizeof bad / sizeof bad[0]);
  suite_add_tcase(s, t);
  t = tcase_create("files");
  tcase_add_checked_fixture(t, make_tmp, remove_tmp);
  tcase_add_test(t, load_errors);
  tcase_add_test(t, load_and_write_round_trip);
  tcase_add_test(t, build_file_checks);
  suite_add_tcase(s, t);
  t = tcase_create("lookup");
  tcase_add_test(t, lookup_boundaries);
  tcase_add_test(t, lookup_many);
  suite_add_tcase(s, t);
  add_merge_cases(s);
  return s;
}

int main(void) {
  return ufk_check_run(suite());
}

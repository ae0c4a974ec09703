/* Unit tests of the snapshot header's mappings: merging a diff over its
 * base, normalisation, and building the next generation. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snaptest.h"

static struct ufk_snap_mapping mp(uint64_t off, uint64_t len, int tag,
                                  uint64_t storage) {
  struct ufk_snap_mapping m = {
      .offset = off, .length = len, .storage_offset = storage};
  id_of(m.build_id, tag);
  return m;
}

static void assert_maps(const struct ufk_snap_mapping *got, size_t n,
                        const struct ufk_snap_mapping *want, size_t nwant) {
  ck_assert_uint_eq(n, nwant);
  for (size_t i = 0; i < n; i++) {
    ck_assert_uint_eq(got[i].offset, want[i].offset);
    ck_assert_uint_eq(got[i].length, want[i].length);
    ck_assert_uint_eq(got[i].build_id[0], want[i].build_id[0]);
    ck_assert_uint_eq(got[i].storage_offset, want[i].storage_offset);
  }
}

static void merge_case(const struct ufk_snap_mapping *base, size_t nb,
                       const struct ufk_snap_mapping *diff, size_t nd,
                       const struct ufk_snap_mapping *want, size_t nw) {
  struct ufk_snap_mapping *out;
  size_t n;
  ck_assert_int_eq(ufk_snap_merge(base, nb, diff, nd, &out, &n), 0);
  assert_maps(out, n, want, nw);
  free(out);
}

START_TEST(merge_base_before_diff) {
  struct ufk_snap_mapping b[] = {mp(0, 10, 1, 0)}, d[] = {mp(10, 5, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 10, 1, 0), mp(10, 5, 2, 0)};
  merge_case(b, 1, d, 1, w, 2);
}
END_TEST

START_TEST(merge_diff_before_base) {
  struct ufk_snap_mapping b[] = {mp(10, 10, 1, 0)}, d[] = {mp(0, 10, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 10, 2, 0), mp(10, 10, 1, 0)};
  merge_case(b, 1, d, 1, w, 2);
}
END_TEST

START_TEST(merge_base_inside_diff) {
  struct ufk_snap_mapping b[] = {mp(0, 10, 1, 0), mp(10, 10, 1, 10),
                                 mp(20, 10, 1, 20)};
  struct ufk_snap_mapping d[] = {mp(5, 20, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 5, 1, 0), mp(5, 20, 2, 0),
                                 mp(25, 5, 1, 25)};
  merge_case(b, 3, d, 1, w, 3);
}
END_TEST

START_TEST(merge_diff_inside_base) {
  struct ufk_snap_mapping b[] = {mp(0, 100, 1, 1000)};
  struct ufk_snap_mapping d[] = {mp(10, 10, 2, 0), mp(50, 5, 0, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 10, 1, 1000), mp(10, 10, 2, 0),
                                 mp(20, 30, 1, 1020), mp(50, 5, 0, 0),
                                 mp(55, 45, 1, 1055)};
  merge_case(b, 1, d, 2, w, 5);
}
END_TEST

START_TEST(merge_base_starts_inside_diff) {
  struct ufk_snap_mapping b[] = {mp(0, 10, 1, 0), mp(10, 20, 3, 100)};
  struct ufk_snap_mapping d[] = {mp(5, 10, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 5, 1, 0), mp(5, 10, 2, 0),
                                 mp(15, 15, 3, 105)};
  merge_case(b, 2, d, 1, w, 3);
}
END_TEST

START_TEST(merge_diff_starts_inside_base) {
  struct ufk_snap_mapping b[] = {mp(0, 10, 1, 0), mp(10, 10, 3, 50)};
  struct ufk_snap_mapping d[] = {mp(8, 4, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 8, 1, 0), mp(8, 4, 2, 0),
                                 mp(12, 8, 3, 52)};
  merge_case(b, 2, d, 1, w, 3);
}
END_TEST

START_TEST(merge_equal_ranges_and_leftovers) {
  /* Equal ranges: the diff wins.  Zero lengths vanish; the rest of either
   * list is kept. */
  struct ufk_snap_mapping b[] = {mp(0, 10, 1, 0), mp(10, 0, 1, 0),
                                 mp(10, 10, 1, 10), mp(20, 10, 1, 20)};
  struct ufk_snap_mapping d[] = {mp(0, 10, 2, 0), mp(10, 0, 2, 0)};
  struct ufk_snap_mapping w[] = {mp(0, 10, 2, 0), mp(10, 10, 1, 10),
                                 mp(20, 10, 1, 20)};
  merge_case(b, 4, d, 2, w, 3);
  struct ufk_snap_mapping d2[] = {mp(30, 10, 2, 0), mp(40, 10, 2, 10)};
  struct ufk_snap_mapping w2[] = {mp(0, 10, 1, 0), mp(10, 10, 1, 10),
                                  mp(20, 10, 1, 20), mp(30, 10, 2, 0),
                                  mp(40, 10, 2, 10)};
  merge_case(b, 4, d2, 2, w2, 5);
  merge_case(b, 4, NULL, 0, w2, 3);
}
END_TEST

START_TEST(normalize_joins_only_contiguous_storage) {
  struct ufk_snap_mapping m[] = {
      mp(0, 10, 1, 0),   mp(10, 10, 1, 10),  /* joined */
      mp(20, 10, 1, 50),                     /* storage jumps (#2848) */
      mp(30, 10, 0, 0),  mp(40, 10, 0, 777), /* nil: always joined */
      mp(50, 10, 2, 20), mp(60, 10, 1, 60),
  };
  size_t n = ufk_snap_normalize(m, 7);
  struct ufk_snap_mapping w[] = {mp(0, 20, 1, 0), mp(20, 10, 1, 50),
                                 mp(30, 20, 0, 0), mp(50, 10, 2, 20),
                                 mp(60, 10, 1, 60)};
  assert_maps(m, n, w, 5);
}
END_TEST

START_TEST(runs_of_bitmap) {
  uint64_t bits[2] = {0x0f0ull | 1ull << 63, 0x1};
  uint8_t id[16];
  id_of(id, 5);
  struct ufk_snap_mapping *m;
  size_t n;
  ck_assert_int_eq(ufk_snap_runs(bits, 70, K4, id, &m, &n), 0);
  struct ufk_snap_mapping w[] = {mp(4 * K4, 4 * K4, 5, 0),
                                 mp(63 * K4, 2 * K4, 5, 4 * K4)};
  assert_maps(m, n, w, 2);
  free(m);
}
END_TEST

START_TEST(next_generation) {
  /* Parent: 8 blocks, 0-3 from A, 4-5 nil, 6-7 from B. */
  struct ufk_snap_mapping pm[] = {mp(0, 4 * K4, 0xa, 0),
                                  mp(4 * K4, 2 * K4, 0, 0),
                                  mp(6 * K4, 2 * K4, 0xb, 0)};
  struct ufk_snap_header parent = {.version = 2,
                                   .block_size = K4,
                                   .size = 8 * K4,
                                   .generation = 4,
                                   .nmappings = 3,
                                   .mappings = pm};
  id_of(parent.build_id, 0xb);
  id_of(parent.base_build_id, 0xa);
  /* Block 1: dirty.  Block 2: dirty and empty (a page zeroed: nil, never
   * A's bytes).  Block 5: dirty (over nil).  Block 7: empty. */
  uint64_t dirty = 1 << 1 | 1 << 2 | 1 << 5, empty = 1 << 2 | 1 << 7;
  uint8_t c[16];
  id_of(c, 0xc);
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  ck_assert_int_eq(ufk_snap_next(&parent, c, &dirty, &empty, &out, &err), 0);
  ck_assert_uint_eq(out.version, 2);
  ck_assert_uint_eq(out.generation, 5);
  ck_assert_uint_eq(out.size, 8 * K4);
  ck_assert_uint_eq(out.build_id[0], 0xc);
  ck_assert_uint_eq(out.base_build_id[0], 0xa);
  struct ufk_snap_mapping w[] = {
      mp(0, K4, 0xa, 0),      mp(K4, K4, 0xc, 0),
      mp(2 * K4, K4, 0, 0),   mp(3 * K4, K4, 0xa, 3 * K4),
      mp(4 * K4, K4, 0, 0),   mp(5 * K4, K4, 0xc, K4),
      mp(6 * K4, K4, 0xb, 0), mp(7 * K4, K4, 0, 0)};
  assert_maps(out.mappings, out.nmappings, w, 8);
  ufk_snap_free(&out);
}
END_TEST

START_TEST(first_generation) {
  uint64_t dirty = 0x6; /* blocks 1 and 2 */
  uint8_t a[16];
  id_of(a, 0xa);
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  ck_assert_int_eq(ufk_snap_first(4 * M2, M2, a, &dirty, &out, &err), 0);
  ck_assert_uint_eq(out.generation, 0);
  ck_assert_uint_eq(out.version, UFK_SNAP_VERSION_WRITE);
  ck_assert_mem_eq(out.base_build_id, a, 16);
  ck_assert_mem_eq(out.build_id, a, 16);
  struct ufk_snap_mapping w[] = {mp(0, M2, 0, 0), mp(M2, 2 * M2, 0xa, 0),
                                 mp(3 * M2, M2, 0, 0)};
  assert_maps(out.mappings, out.nmappings, w, 3);
  ufk_snap_free(&out);
  ck_assert_int_eq(ufk_snap_first(M2 + K4, M2, a, &dirty, &out, &err), -1);
  ck_assert_str_eq(err.msg, "new header: metadata Size (byte 16) 2101248 is "
                            "not a multiple of the block size 2097152");
}
END_TEST

START_TEST(expand_template) {
  uint8_t id[16];
  id_of(id, 0x12);
  char *s = ufk_snap_expand("/s/{build_id}/m.{build_id}", id);
  ck_assert_str_eq(s, "/s/12121212-1212-1212-1212-121212121212/m."
                      "12121212-1212-1212-1212-121212121212");
  free(s);
  s = ufk_snap_expand("plain", id);
  ck_assert_str_eq(s, "plain");
  free(s);
}
END_TEST

void add_merge_cases(Suite *s) {
  TCase *t = tcase_create("merge");
  tcase_add_test(t, merge_base_before_diff);
  tcase_add_test(t, merge_diff_before_base);
  tcase_add_test(t, merge_base_inside_diff);
  tcase_add_test(t, merge_diff_inside_base);
  tcase_add_test(t, merge_base_starts_inside_diff);
  tcase_add_test(t, merge_diff_starts_inside_base);
  tcase_add_test(t, merge_equal_ranges_and_leftovers);
  tcase_add_test(t, normalize_joins_only_contiguous_storage);
  suite_add_tcase(s, t);
  t = tcase_create("generations");
  tcase_add_test(t, runs_of_bitmap);
  tcase_add_test(t, next_generation);
  tcase_add_test(t, first_generation);
  tcase_add_test(t, expand_template);
  suite_add_tcase(s, t);
}

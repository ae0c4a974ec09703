/* The fetch plan of a working-set replay (core/worker/wplan.c). */
#include <check.h>
#include <stdlib.h>

#include "checkrun.h"
#include "wplan.h"

static size_t plan(const uint64_t *pages, size_t n, uint64_t nsrc, uint64_t gap,
                   uint64_t block, struct wrange **r) {
  return wplan_build(pages, n, nsrc, gap, block, r);
}

/* Neighbours touched far apart in time are fetched as one range, placed
 * where the first of them was touched. */
START_TEST(merges_neighbours_out_of_order) {
  uint64_t pages[] = {501, 10, 12, 11, 13, 500};
  struct wrange *r;
  size_t n = plan(pages, 6, 1024, 0, 256, &r);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(r[0].first, 500);
  ck_assert_uint_eq(r[0].n, 2);
  ck_assert_uint_eq(r[1].first, 10);
  ck_assert_uint_eq(r[1].n, 4);
  free(r);
}
END_TEST

/* Gaps of up to `gap` unlisted pages are bridged, longer ones are not. */
START_TEST(bridges_short_gaps_only) {
  uint64_t pages[] = {100, 103, 110};
  struct wrange *r;
  size_t n = plan(pages, 3, 1024, 2, 256, &r);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(r[0].first, 100);
  ck_assert_uint_eq(r[0].n, 4);
  ck_assert_uint_eq(r[1].first, 110);
  ck_assert_uint_eq(r[1].n, 1);
  free(r);
}
END_TEST

/* A long run is split at block boundaries, so no range straddles a chunk
 * of a size dividing the block; every listed page is in one range. */
START_TEST(splits_at_blocks) {
  uint64_t pages[40];
  for (int i = 0; i < 40; i++)
    pages[i] = 5 + (uint64_t)i; /* 5..44 */
  struct wrange *r;
  size_t n = plan(pages, 40, 64, 0, 16, &r);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(r[0].first, 5);
  ck_assert_uint_eq(r[0].n, 11);
  ck_assert_uint_eq(r[1].first, 16);
  ck_assert_uint_eq(r[1].n, 16);
  ck_assert_uint_eq(r[2].first, 32);
  ck_assert_uint_eq(r[2].n, 13);
  free(r);
}
END_TEST

/* Pages past the source are left out; an empty list plans nothing. */
START_TEST(ignores_pages_outside) {
  uint64_t pages[] = {70, 63};
  struct wrange *r;
  size_t n = plan(pages, 2, 64, 0, 16, &r);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(r[0].first, 63);
  ck_assert_uint_eq(r[0].n, 1);
  free(r);
  ck_assert_uint_eq(plan(pages, 0, 64, 0, 16, &r), 0);
  free(r);
}
END_TEST

int main(void) {
  Suite *s = suite_create("wplan");
  TCase *tc = tcase_create("plan");
  tcase_add_test(tc, merges_neighbours_out_of_order);
  tcase_add_test(tc, bridges_short_gaps_only);
  tcase_add_test(tc, splits_at_blocks);
  tcase_add_test(tc, ignores_pages_outside);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

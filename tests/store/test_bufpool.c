/* The store's buffer pool, and the chunk cache giving dropped chunks back
 * to it. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bufpool.h"
#include "ccache.h"
#include "checkrun.h"

#define SECOND 1000000000ull

/* Waits (up to 20 s: a loaded machine) for the pool to hold `n` ready. */
static unsigned wait_ready(struct bufpool *p, unsigned n) {
  for (int i = 0; i < 2000 && bufpool_ready(p) != n; i++)
    usleep(10000);
  return bufpool_ready(p);
}

START_TEST(fills_ahead_after_first_take) {
  struct bufpool *p = bufpool_new(16384, 8, SECOND);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(bufpool_ready(p), 0); /* nothing before it is used */
  void *b = bufpool_take(p);
  ck_assert_ptr_nonnull(b);
  memset(b, 0xa5, 16384); /* the whole size is ours */
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  void *c = bufpool_take(p);
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_ne(b, c);
  free(b);
  free(c);
  bufpool_free(p);
}
END_TEST

/* A take above half leaves the filler asleep; the take that reaches half
 * wakes it and it fills up.  (Exactly to half: a take after the wake-up
 * could meet a full pool again and leave it at ahead - 1.) */
START_TEST(refills_at_half) {
  struct bufpool *p = bufpool_new(4096, 8, SECOND);
  void *t[4];
  free(bufpool_take(p));
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  for (int i = 0; i < 3; i++)
    t[i] = bufpool_take(p);
  usleep(200000);
  ck_assert_uint_eq(bufpool_ready(p), 5);
  t[3] = bufpool_take(p);
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  for (int i = 0; i < 4; i++)
    free(t[i]);
  bufpool_free(p);
}
END_TEST

/* Takes down to half: wakes the filler (or starts one), which fills up. */
static void drain_and_refill(struct bufpool *p, unsigned ahead) {
  void *t[64];
  unsigned k = ahead - ahead / 2;
  for (unsigned i = 0; i < k; i++)
    t[i] = bufpool_take(p);
  ck_assert_uint_eq(wait_ready(p, ahead), ahead);
  for (unsigned i = 0; i < k; i++)
    free(t[i]);
}

/* A busy pool keeps its one filler: no thread is started on the fault
 * path per refill (an idle time far past any pause between rounds, so a
 * loaded machine cannot end it early). */
START_TEST(one_filler_while_busy) {
  struct bufpool *p = bufpool_new(4096, 8, 60 * SECOND);
  free(bufpool_take(p));
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  for (int round = 0; round < 5; round++)
    drain_and_refill(p, 8);
  ck_assert_uint_eq(bufpool_starts(p), 1);
  bufpool_free(p);
}
END_TEST

/* A pool idle past its idle time has no filler, and starts one again
 * when taken from (a daemon may hold thousands of idle pools). */
START_TEST(no_filler_when_idle) {
  struct bufpool *p = bufpool_new(4096, 8, SECOND / 20);
  free(bufpool_take(p));
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  sleep(1);
  ck_assert_uint_eq(bufpool_starts(p), 1);
  drain_and_refill(p, 8);
  ck_assert_uint_eq(bufpool_starts(p), 2);
  bufpool_free(p);
}
END_TEST

/* The counters: a take from an empty pool is counted as empty, the
 * buffers the filler writes as made; a take of a ready one is neither. */
START_TEST(counts_made_and_empty_takes) {
  struct bufpool *p = bufpool_new(4096, 8, SECOND);
  uint64_t made = 0, empty = 0;
  bufpool_count(p, &made, &empty);
  free(bufpool_take(p));
  ck_assert_uint_eq(empty, 1);
  ck_assert_uint_eq(wait_ready(p, 8), 8);
  ck_assert_uint_eq(__atomic_load_n(&made, __ATOMIC_RELAXED), 8);
  free(bufpool_take(p));
  ck_assert_uint_eq(empty, 1);
  bufpool_free(p);
}
END_TEST

/* Gives keep up to `ahead` and free the rest (ASan sees a lost or twice
 * freed buffer).  No take: no filler races the count. */
START_TEST(gives_back_up_to_ahead) {
  struct bufpool *p = bufpool_new(4096, 4, SECOND);
  for (unsigned i = 0; i < 6; i++) {
    bufpool_give(p, malloc(4096));
    ck_assert_uint_eq(bufpool_ready(p), i < 4 ? i + 1 : 4);
  }
  bufpool_give(p, NULL);
  ck_assert_uint_eq(bufpool_ready(p), 4);
  ck_assert_uint_eq(bufpool_starts(p), 0);
  bufpool_free(p);
}
END_TEST

/* A cache of two chunks holding buffers from its pool: it keeps the two
 * newest, drops the oldest (back to the pool; ASan sees a lost or twice
 * freed buffer) and serves what it holds. */
START_TEST(cache_holds_chunks_from_its_pool) {
  struct ccache c;
  ck_assert_int_eq(ccache_init(&c, 2 * 4096, 16, 4096), 0);
  ck_assert_ptr_nonnull(c.pool);
  uint8_t *b[3];
  for (int i = 0; i < 3; i++) {
    uint64_t want = (uint64_t)i;
    ck_assert_uint_eq(ccache_claim(&c, &want, 1, 4096), 1);
    b[i] = ccache_buf(&c);
    memset(b[i], i + 1, 4096);
    ccache_done(&c, (uint64_t)i, b[i], 4096);
  }
  uint8_t out[4096];
  ck_assert_int_eq(ccache_get(&c, 2, 0, out, 4096), CC_HIT);
  ck_assert_uint_eq(out[4095], 3);
  ck_assert_int_eq(ccache_get(&c, 1, 0, out, 4096), CC_HIT);
  ck_assert_uint_eq(out[0], 2);
  ck_assert_int_eq(ccache_get(&c, 0, 0, out, 4096), CC_MINE);
  ccache_done(&c, 0, NULL, 0);
  ccache_free(&c);
}
END_TEST

START_TEST(cache_off_has_no_pool) {
  struct ccache c;
  ck_assert_int_eq(ccache_init(&c, 0, 16, 4096), 0);
  ck_assert_ptr_null(c.pool);
  void *b = ccache_buf(&c);
  ck_assert_ptr_nonnull(b);
  ccache_unbuf(&c, b);
  ccache_free(&c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store-bufpool");
  TCase *tc = tcase_create("bufpool");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, fills_ahead_after_first_take);
  tcase_add_test(tc, refills_at_half);
  tcase_add_test(tc, one_filler_while_busy);
  tcase_add_test(tc, no_filler_when_idle);
  tcase_add_test(tc, counts_made_and_empty_takes);
  tcase_add_test(tc, gives_back_up_to_ahead);
  tcase_add_test(tc, cache_holds_chunks_from_its_pool);
  tcase_add_test(tc, cache_off_has_no_pool);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

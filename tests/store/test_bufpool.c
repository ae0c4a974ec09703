/* The store's buffer pool, and the chunk cache giving dropped chunks back
 * to it. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bufpool.h"
#include "ccache.h"
#include "checkrun.h"

#define K16 16384u
#define MIB (1u << 20)

/* Whether every page of [b, b + len) is resident: written before use, so
 * the first write on the fault path costs no page fault. */
static int resident(void *b, size_t len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char v[1024];
  ck_assert_uint_le(len / page, sizeof v);
  ck_assert_int_eq(mincore(b, len, v), 0);
  for (size_t i = 0; i < len / page; i++)
    if (!(v[i] & 1)) return 0;
  return 1;
}

/* Takes cross from one 2 MiB slab into the next; each buffer is its own,
 * whole, and written before it is handed out; the counters say how many
 * were made and in how many fills (256 KiB steps). */
START_TEST(takes_carve_filled_slabs) {
  struct bufpool *p = bufpool_new(K16, 32 * MIB);
  uint64_t made = 0, fills = 0;
  bufpool_count(p, &made, &fills);
  ck_assert_uint_eq(bufpool_mapped(p), 0); /* nothing before a take */
  static uint8_t *b[200];
  for (int i = 0; i < 200; i++) {
    b[i] = bufpool_take(p);
    ck_assert_ptr_nonnull(b[i]);
    ck_assert(resident(b[i], K16));
    memset(b[i], i, K16);
  }
  for (int i = 0; i < 200; i++)
    ck_assert_uint_eq(b[i][0] + b[i][K16 - 1], 2 * (uint8_t)i);
  ck_assert_uint_eq(bufpool_mapped(p), 4 * MIB);
  ck_assert_uint_eq(made, 200);
  ck_assert_uint_eq(fills, 8 + 5); /* 128 buffers, then 72 (4.5 steps) */
  bufpool_free(p);
}
END_TEST

/* A buffer given back is the next taken; no new memory is made for it. */
START_TEST(given_back_taken_again) {
  struct bufpool *p = bufpool_new(K16, 32 * MIB);
  uint64_t made = 0, fills = 0;
  bufpool_count(p, &made, &fills);
  void *a = bufpool_take(p), *b = bufpool_take(p);
  bufpool_give(p, a);
  bufpool_give(p, NULL);
  ck_assert_uint_eq(bufpool_spare(p), 1);
  ck_assert_ptr_eq(bufpool_take(p), a);
  ck_assert_uint_eq(bufpool_spare(p), 0);
  ck_assert_ptr_ne(bufpool_take(p), b);
  ck_assert_uint_eq(made, 3);
  ck_assert_uint_eq(fills, 1);
  bufpool_free(p);
}
END_TEST

/* A user holding little gets slabs of what it holds, not 2 MiB ones. */
START_TEST(small_user_small_slabs) {
  struct bufpool *p = bufpool_new(4096, 3 * 4096);
  for (int i = 0; i < 3; i++)
    ck_assert_ptr_nonnull(bufpool_take(p));
  ck_assert_uint_eq(bufpool_mapped(p), 3 * 4096);
  ck_assert_ptr_nonnull(bufpool_take(p));
  ck_assert_uint_eq(bufpool_mapped(p), 6 * 4096);
  bufpool_free(p);
}
END_TEST

/* Buffers larger than a slab get one slab each, written whole. */
START_TEST(large_buffers_one_a_slab) {
  struct bufpool *p = bufpool_new(4 * MIB, 32 * MIB);
  uint8_t *a = bufpool_take(p), *b = bufpool_take(p);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert(resident(a, 4 * MIB));
  memset(a, 1, 4 * MIB);
  memset(b, 2, 4 * MIB);
  ck_assert_uint_eq(a[4 * MIB - 1] + b[0], 3);
  ck_assert_uint_eq(bufpool_mapped(p), 8 * MIB);
  bufpool_free(p);
}
END_TEST

START_TEST(refuses_buffers_smaller_than_a_pointer) {
  ck_assert_ptr_null(bufpool_new(4, 4096));
  ck_assert_ptr_null(bufpool_new(0, 4096));
}
END_TEST

/* Threads taking, writing their own pattern, checking it and giving back:
 * no buffer is ever out twice at once (TSan sees the pool's races). */
struct churner {
  struct bufpool *pool;
  uint8_t mark;
};

static void *churn(void *arg) {
  struct bufpool *p = ((struct churner *)arg)->pool;
  uint8_t mark = ((struct churner *)arg)->mark;
  for (int round = 0; round < 50; round++) {
    uint8_t *b[8];
    for (int i = 0; i < 8; i++) {
      b[i] = bufpool_take(p);
      memset(b[i] + sizeof(void *), mark, 4096 - sizeof(void *));
      sched_yield(); /* let the others take meanwhile */
    }
    for (int i = 0; i < 8; i++) {
      if (b[i][4095] != mark || b[i][sizeof(void *)] != mark) return (void *)1;
      bufpool_give(p, b[i]);
    }
  }
  return NULL;
}

START_TEST(threads_never_share_a_buffer) {
  struct bufpool *p = bufpool_new(4096, 64 * 4096);
  pthread_t t[4];
  struct churner c[4];
  for (int i = 0; i < 4; i++) {
    c[i] = (struct churner){p, (uint8_t)(i + 1)};
    ck_assert_int_eq(pthread_create(&t[i], NULL, churn, &c[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    ck_assert_ptr_null(r);
  }
  ck_assert_uint_le(bufpool_mapped(p), 64 * 4096);
  bufpool_free(p);
}
END_TEST

/* A cache of two chunks holding buffers from its pool: it keeps the two
 * newest, drops the oldest (back to the pool, whose next take it is) and
 * serves what it holds. */
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
    ccache_done(&c, (uint64_t)i, &(struct cchunk){.data = b[i], .len = 4096});
  }
  ck_assert_uint_eq(bufpool_spare(c.pool), 1);
  void *again = ccache_buf(&c);
  ck_assert_ptr_eq(again, b[0]);
  ccache_unbuf(&c, again);
  uint8_t out[4096];
  ck_assert_int_eq(ccache_get(&c, 2, 0, out, 4096, 1), CC_HIT);
  ck_assert_uint_eq(out[4095], 3);
  ck_assert_int_eq(ccache_get(&c, 1, 0, out, 4096, 1), CC_HIT);
  ck_assert_uint_eq(out[0], 2);
  ck_assert_int_eq(ccache_get(&c, 0, 0, out, 4096, 1), CC_MINE);
  /* In flight: a read that may not wait gets it to fetch for itself. */
  ck_assert_int_eq(ccache_get(&c, 0, 0, out, 4096, 0), CC_BUSY);
  ccache_done(&c, 0, NULL);
  ccache_free(&c);
}
END_TEST

/* A read that fetched a chunk in flight for someone else offers it: its
 * next reads are hits, and the fetch in flight gives its copy back. */
START_TEST(cache_takes_an_offer_for_a_chunk_in_flight) {
  struct ccache c;
  ck_assert_int_eq(ccache_init(&c, 4 * 4096, 16, 4096), 0);
  uint64_t want = 5;
  ck_assert_uint_eq(ccache_claim(&c, &want, 1, 4096), 1);
  uint8_t out[4096];
  ck_assert_int_eq(ccache_get(&c, 5, 0, out, 4096, 0), CC_BUSY);
  uint8_t *mine = ccache_buf(&c);
  memset(mine, 7, 4096);
  ck_assert_int_eq(
      ccache_offer(&c, 5, &(struct cchunk){.data = mine, .len = 4096}), 1);
  ck_assert_int_eq(ccache_get(&c, 5, 100, out, 16, 0), CC_HIT);
  ck_assert_uint_eq(out[15], 7);
  uint8_t *late = ccache_buf(&c);
  memset(late, 9, 4096);
  unsigned spare = bufpool_spare(c.pool);
  ccache_done(&c, 5, &(struct cchunk){.data = late, .len = 4096});
  ck_assert_uint_eq(bufpool_spare(c.pool), spare + 1);
  late = ccache_buf(&c);
  ck_assert_int_eq(ccache_get(&c, 5, 0, out, 4096, 1), CC_HIT);
  ck_assert_uint_eq(out[0], 7);
  /* Held, or empty: an offer is refused and the buffer stays the
   * caller's. */
  struct cchunk again_late = {.data = late, .len = 4096};
  ck_assert_int_eq(ccache_offer(&c, 5, &again_late), 0);
  ck_assert_int_eq(ccache_offer(&c, 6, &again_late), 0);
  ccache_unbuf(&c, late);
  ccache_free(&c);
}
END_TEST

/* The store's part of a copy out of the cache, recorded: which pages it
 * was asked to check, and whether to fail them (a recorder, not a hash:
 * the cache only calls it); it copies only what passed. */
static uint64_t asked;
static int fail_check;
static int record_copy(void *arg, uint64_t i, const uint8_t *data, uint64_t len,
                       const uint8_t *sums, int check, uint64_t shift,
                       void *dst, uint64_t n) {
  (void)arg;
  ck_assert_uint_eq(i, 3);
  ck_assert_uint_eq(len, 16384);
  ck_assert_uint_eq(sums[0], 0xee);
  if (check) asked |= ccache_pages(shift, n);
  if (check && fail_check) return -1;
  memcpy(dst, data + shift, n);
  return 0;
}

/* A chunk held with its page sums and page 0 checked: a read of page 0 is
 * not checked again, a read of pages 1-2 is checked once, and a page that
 * fails drops the chunk (CC_BAD, then fetched anew). */
START_TEST(cache_checks_pages_held_unchecked) {
  struct ccache c;
  ck_assert_int_eq(ccache_init(&c, 8 * 16384, 16, 16384), 0);
  c.copy = record_copy;
  asked = 0;
  fail_check = 0;
  uint8_t out[8192];
  ck_assert_int_eq(ccache_get(&c, 3, 0, out, 4096, 1), CC_MINE);
  struct cchunk k = {.data = ccache_buf(&c),
                     .len = 16384,
                     .sums = malloc(4 * 32),
                     .checked = ccache_pages(0, 4096)};
  memset(k.data, 5, 16384);
  memset(k.sums, 0xee, 4 * 32);
  ccache_done(&c, 3, &k);
  ck_assert_int_eq(ccache_get(&c, 3, 0, out, 4096, 1), CC_HIT);
  ck_assert_uint_eq(asked, 0);
  ck_assert_int_eq(ccache_get(&c, 3, 4096, out, 8192, 1), CC_HIT);
  ck_assert_uint_eq(asked, 0x6);
  ck_assert_uint_eq(out[8191], 5);
  asked = 0;
  ck_assert_int_eq(ccache_get(&c, 3, 4096, out, 8192, 1), CC_HIT);
  ck_assert_uint_eq(asked, 0);
  fail_check = 1;
  memset(out, 0, sizeof out);
  ck_assert_int_eq(ccache_get(&c, 3, 12288, out, 4096, 1), CC_BAD);
  ck_assert_uint_eq(asked, 0x8);
  ck_assert_uint_eq(out[0], 0); /* nothing copied */
  ck_assert_uint_eq(c.bytes, 0);
  ck_assert_int_eq(ccache_get(&c, 3, 0, out, 4096, 1), CC_MINE);
  ccache_done(&c, 3, NULL);
  ck_assert_uint_eq(ccache_pages(0, 16384), 0xf);
  ck_assert_uint_eq(ccache_pages(100, 1), 0x1);
  ck_assert_uint_eq(ccache_pages(4095, 2), 0x3);
  ck_assert_uint_eq(ccache_pages(63 * 4096, 4096), 1ull << 63);
  ck_assert_uint_eq(ccache_pages(62 * 4096, 3 * 4096), 3ull << 62);
  ck_assert_uint_eq(ccache_pages(512 * 4096, 4096), 0); /* a 4 MiB chunk's */
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
  tcase_add_test(tc, takes_carve_filled_slabs);
  tcase_add_test(tc, cache_checks_pages_held_unchecked);
  tcase_add_test(tc, given_back_taken_again);
  tcase_add_test(tc, small_user_small_slabs);
  tcase_add_test(tc, large_buffers_one_a_slab);
  tcase_add_test(tc, refuses_buffers_smaller_than_a_pointer);
  tcase_add_test(tc, threads_never_share_a_buffer);
  tcase_add_test(tc, cache_holds_chunks_from_its_pool);
  tcase_add_test(tc, cache_takes_an_offer_for_a_chunk_in_flight);
  tcase_add_test(tc, cache_off_has_no_pool);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

/* Unit tests of the diff source's cache of decoded frames
 * (plugins/diff/frames.c): one decode serves every concurrent reader of a
 * frame, the cache stays within its slots and reclaims the least recently
 * used frame, and a failed decode leaves nothing behind. */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "checkrun.h"
#include "frames.h"

#define FRAME 4096

static int decodes;
static int fail_next;

static int decode(void *opaque, uint8_t *dst) {
  __atomic_fetch_add(&decodes, 1, __ATOMIC_SEQ_CST);
  usleep(50000); /* long enough for every reader to arrive */
  if (fail_next) return -1;
  memset(dst, (int)(uintptr_t)opaque, FRAME);
  return 0;
}

static struct fcache cache;
static const int owner;

static void *reader(void *arg) {
  (void)arg;
  long s = fcache_get(&cache, &owner, 7, decode, (void *)(uintptr_t)0x77);
  ck_assert_int_ge(s, 0);
  ck_assert_uint_eq(cache.slots[s].buf[FRAME - 1], 0x77);
  fcache_put(&cache, s);
  return NULL;
}

START_TEST(one_decode_for_many_readers) {
  pthread_t t[8];
  decodes = 0;
  ck_assert_int_eq(fcache_init(&cache, 4 * FRAME, FRAME), 0);
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, reader, NULL);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  ck_assert_int_eq(decodes, 1);
  fcache_free(&cache);
}
END_TEST

static void use(uint64_t frame) {
  long s = fcache_get(&cache, &owner, frame, decode, (void *)(uintptr_t)frame);
  ck_assert_int_ge(s, 0);
  ck_assert_uint_eq(cache.slots[s].buf[0], frame);
  fcache_put(&cache, s);
}

START_TEST(bounded_least_recently_used) {
  decodes = 0;
  ck_assert_int_eq(fcache_init(&cache, 2 * FRAME, FRAME), 0);
  ck_assert_uint_eq(cache.nslots, 2);
  use(1);
  use(2);
  use(1); /* hit: 2 is now the least recently used */
  ck_assert_int_eq(decodes, 2);
  use(3); /* takes 2's slot */
  use(1);
  ck_assert_int_eq(decodes, 3);
  use(2);
  ck_assert_int_eq(decodes, 4);
  fcache_free(&cache);
}
END_TEST

START_TEST(failed_decode_kept_nowhere) {
  decodes = 0;
  ck_assert_int_eq(fcache_init(&cache, 2 * FRAME, FRAME), 0);
  fail_next = 1;
  ck_assert_int_eq(fcache_get(&cache, &owner, 5, decode, NULL), -1);
  fail_next = 0;
  use(5);
  ck_assert_int_eq(decodes, 2);
  fcache_free(&cache);
}
END_TEST

int main(void) {
  Suite *s = suite_create("frames");
  TCase *t = tcase_create("cache");
  tcase_add_test(t, one_decode_for_many_readers);
  tcase_add_test(t, bounded_least_recently_used);
  tcase_add_test(t, failed_decode_kept_nowhere);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

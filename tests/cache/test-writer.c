/* The disk mode's writer thread (plugins/cache/writer.c): jobs are written
 * in order off the queuer's thread; past the copies a chunk is queued by
 * its place alone, and past the places too a put is refused at once
 * instead of blocking the fault that fetched the chunk; a chunk queued
 * with a copy can be read back before it is written, and stopping writes
 * the queue out. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "checkrun.h"
#include "writer.h"

/* A write function the test holds: each call waits until released. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int entered, allowed, written;
static uint64_t order[256];
static int copies;

static void held_write(void *arg, const struct wjob *j) {
  (void)arg;
  pthread_mutex_lock(&lock);
  entered++;
  pthread_cond_broadcast(&cond);
  while (allowed <= written)
    pthread_cond_wait(&cond, &lock);
  order[written++] = j->off;
  if (j->buf) {
    copies++;
    ck_assert_uint_eq(j->buf[0], (uint8_t)j->off);
  }
  pthread_mutex_unlock(&lock);
}

static void allow(int n) {
  pthread_mutex_lock(&lock);
  allowed += n;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
}

static void wait_entered(int n) {
  pthread_mutex_lock(&lock);
  while (entered < n)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

static int put(struct writer *w, uint64_t off) {
  uint8_t key[WRITER_KEY_LEN] = {7}, buf[64];
  memset(buf, (uint8_t)off, sizeof buf);
  return writer_put(w, key, off, buf, sizeof buf, &lock);
}

START_TEST(past_the_copies_places_then_refusal) {
  entered = allowed = written = copies = 0;
  struct writer *w = writer_new(3, held_write, NULL);
  ck_assert_ptr_nonnull(w);
  ck_assert_int_eq(put(w, 1), 0);
  wait_entered(1); /* job 1 is being written, and held */
  ck_assert_int_eq(put(w, 2), 0);
  ck_assert_int_eq(put(w, 3), 0);
  /* Three copies, all taken: the next ones wait by their place, up to
   * 3 * WRITER_NOCOPY_FACTOR, and then a put is refused at once. */
  for (int i = 0; i < 3 * WRITER_NOCOPY_FACTOR; i++)
    ck_assert_int_eq(put(w, 4 + (uint64_t)i), 0);
  errno = 0;
  ck_assert_int_eq(put(w, 999), -1);
  ck_assert_int_eq(errno, EAGAIN);

  uint8_t key[WRITER_KEY_LEN] = {7}, other[WRITER_KEY_LEN] = {8}, buf[64];
  ck_assert_int_eq(writer_find(w, key, 3, buf, sizeof buf), 1);
  ck_assert_uint_eq(buf[0], 3);
  ck_assert_int_eq(writer_find(w, key, 1, buf, sizeof buf), 1);
  ck_assert_int_eq(writer_find(w, key, 4, buf, sizeof buf), 0); /* no copy */
  ck_assert_int_eq(writer_find(w, other, 3, buf, sizeof buf), 0);
  ck_assert_int_eq(writer_find(w, key, 3, buf, 32), 0);

  allow(1);
  wait_entered(2); /* job 1 done: one copy's place free again */
  ck_assert_int_eq(put(w, 1000), 0);
  ck_assert_int_eq(writer_find(w, key, 1000, buf, sizeof buf), 1);
  allow(1000);
  writer_drain(w, &lock);
  int n = 3 + 3 * WRITER_NOCOPY_FACTOR + 1;
  ck_assert_int_eq(written, n);
  ck_assert_int_eq(copies, 4); /* 1, 2, 3 and 1000 */
  ck_assert_int_eq(writer_find(w, key, 3, buf, sizeof buf), 0);
  for (int i = 0; i < n - 1; i++)
    ck_assert_uint_eq(order[i], (uint64_t)i + 1);
  ck_assert_uint_eq(order[n - 1], 1000);
  writer_free(w);
}
END_TEST

START_TEST(stopping_writes_the_queue_out) {
  entered = allowed = written = 0;
  struct writer *w = writer_new(8, held_write, NULL);
  ck_assert_ptr_nonnull(w);
  for (uint64_t i = 1; i <= 5; i++)
    ck_assert_int_eq(put(w, i), 0);
  allow(100);
  writer_free(w);
  ck_assert_int_eq(written, 5);
}
END_TEST

int main(void) {
  Suite *s = suite_create("writer");
  TCase *tc = tcase_create("writer");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, past_the_copies_places_then_refusal);
  tcase_add_test(tc, stopping_writes_the_queue_out);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

/* The worker's joined helper threads (core/worker/helpers.c). */
#include <check.h>
#include <pthread.h>
#include <time.h>

#include "checkrun.h"
#include "helpers.h"

static pthread_key_t key;
static int destructed;

/* A thread-local destructor that takes its time, as a library's may: the
 * helper's end is not over before it is. */
static void slow_destructor(void *v) {
  (void)v;
  nanosleep(&(struct timespec){0, 20000000}, NULL);
  __atomic_fetch_add(&destructed, 1, __ATOMIC_SEQ_CST);
}

static void *uses_tls(void *arg) {
  pthread_setspecific(key, arg);
  return NULL;
}

/* When join_all returns, every helper has ended whole: its thread-local
 * destructors have run (a count of ended bodies would not say so). */
START_TEST(join_all_waits_for_thread_local_destructors) {
  struct helpers h = HELPERS_INIT;
  ck_assert_int_eq(pthread_key_create(&key, slow_destructor), 0);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(helpers_start(&h, uses_tls, &h), 0);
  helpers_join_all(&h);
  ck_assert_int_eq(__atomic_load_n(&destructed, __ATOMIC_SEQ_CST), 8);
  ck_assert_uint_eq(helpers_count(&h), 0);
}
END_TEST

static void *quick(void *arg) {
  __atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* Helpers that have finished are joined when the next one starts: a
 * daemon that starts thousands over its life keeps none of them. */
START_TEST(finished_helpers_joined_at_next_start) {
  struct helpers h = HELPERS_INIT;
  int ran = 0;
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(helpers_start(&h, quick, &ran), 0);
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  ck_assert_uint_le(helpers_count(&h), 50); /* 200 if none were joined */
  helpers_join_all(&h);
  ck_assert_uint_eq(helpers_count(&h), 0);
  ck_assert_int_eq(ran, 200);
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-worker-helpers");
  const struct ufk_check_case cases[] = {
      {"join_all_waits_for_thread_local_destructors",
       join_all_waits_for_thread_local_destructors},
      {"finished_helpers_joined_at_next_start",
       finished_helpers_joined_at_next_start},
  };
  ufk_check_cases(s, cases, sizeof cases / sizeof *cases, NULL, NULL, 60);
  return ufk_check_run(s);
}

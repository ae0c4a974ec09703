/* The fault loop's busy-polling policy (core/worker/busypoll.c): with
 * spin = "auto" a session sleeps through more and more batches after
 * windows that ended without a fault, looks again after a fault caught,
 * and stops looking while more threads are runnable than there are CPUs;
 * it naps through the part of long gaps between faults it has learnt, less
 * how late its timer wakes it; a fixed window always looks.  Decisions, not
 * timings, are checked. */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busypoll.h"
#include "checkrun.h"

#define WINDOW 50000ull

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Batches in a row busypoll_begin sleeps through (returns 0). */
static int sleeps(struct busypoll *b) {
  int n = 0;
  while (busypoll_begin(b, WINDOW) == 0)
    n++;
  return n;
}

START_TEST(backs_off_after_misses) {
  struct busypoll b = {.adaptive = 1};
  ck_assert_uint_eq(busypoll_begin(&b, WINDOW), WINDOW);
  int want[] = {1, 3, 7, 15, 31, 63, 127, 255, 255, 255};
  for (int i = 0; i < 10; i++) {
    busypoll_missed(&b);
    ck_assert_int_eq(sleeps(&b), want[i]);
  }
  /* A fault caught while looking: the next miss starts over. */
  busypoll_caught(&b);
  busypoll_missed(&b);
  ck_assert_int_eq(sleeps(&b), 1);
  ck_assert_uint_eq(b.missed, 11);
  ck_assert_uint_eq(b.caught, 1);
  ck_assert_uint_eq(b.slept_backoff,
                    1 + 3 + 7 + 15 + 31 + 63 + 127 + 255 * 3 + 1);
  /* Off stays off. */
  ck_assert_uint_eq(busypoll_begin(&b, 0), 0);
}
END_TEST

START_TEST(fixed_window_always_looks) {
  struct busypoll b = {.adaptive = 0};
  for (int i = 0; i < 20; i++) {
    ck_assert_uint_eq(busypoll_begin(&b, WINDOW), WINDOW);
    busypoll_missed(&b);
  }
  ck_assert_uint_eq(b.slept_backoff, 0);
  ck_assert_uint_eq(b.missed, 20);
}
END_TEST

/* With one always-runnable process per CPU and one more, more threads are
 * runnable than there are CPUs whenever the policy looks: an adaptive
 * session stops, a fixed one goes on. */
START_TEST(stops_while_cpus_busy) {
  long n = sysconf(_SC_NPROCESSORS_ONLN) + 1;
  pid_t kids[n];
  for (long i = 0; i < n; i++) {
    kids[i] = fork();
    ck_assert_int_ge(kids[i], 0);
    if (kids[i] == 0)
      for (;;) {
      }
  }
  struct busypoll a = {.adaptive = 1}, f = {.adaptive = 0};
  int stopped = 0, fixed_stopped = 0;
  /* The count is read at most once a millisecond: look past that. */
  for (uint64_t end = now_ns() + 20000000ull; now_ns() < end;) {
    stopped += !busypoll_go_on(&a, now_ns());
    fixed_stopped += !busypoll_go_on(&f, now_ns());
    usleep(2000);
  }
  for (long i = 0; i < n; i++) {
    kill(kids[i], SIGKILL);
    waitpid(kids[i], NULL, 0);
  }
  ck_assert_int_gt(stopped, 0);
  ck_assert_uint_eq(a.slept_busy, (uint64_t)stopped);
  ck_assert_int_eq(fixed_stopped, 0);
}
END_TEST

#define US 1000ull

/* Faults 200 us apart, each caught while looking: the nap grows towards
 * the gap less the lead (10 us), and a timer seen waking 30 us late is
 * asked for 30 us less. */
START_TEST(naps_through_long_gaps) {
  struct busypoll b = {.adaptive = 1};
  ck_assert_uint_eq(busypoll_nap(&b), 0);
  for (int i = 0; i < 40; i++)
    busypoll_gap(&b, 200 * US, 0);
  uint64_t nap = busypoll_nap(&b);
  ck_assert_uint_gt(nap, 185 * US);
  ck_assert_uint_le(nap, 190 * US);
  for (int i = 0; i < 20; i++)
    busypoll_slept(&b, nap, nap + 30 * US);
  nap = busypoll_nap(&b);
  ck_assert_uint_gt(nap, 155 * US);
  ck_assert_uint_le(nap, 160 * US);
  ck_assert_uint_eq(b.naps, 3);
  /* Shorter gaps bring it down at once. */
  busypoll_gap(&b, 120 * US, 0);
  ck_assert_uint_eq(busypoll_nap(&b), 110 * US - b.late_ns);
}
END_TEST

/* One nap that ran far long (the thread preempted) makes the timer look
 * late; that lateness wears off over the gaps it stops naps for, and
 * napping comes back without another nap to tell it. */
START_TEST(one_long_nap_does_not_end_napping) {
  struct busypoll b = {.adaptive = 1};
  for (int i = 0; i < 40; i++)
    busypoll_gap(&b, 100 * US, 0);
  uint64_t nap = busypoll_nap(&b);
  ck_assert_uint_gt(nap, 85 * US);
  busypoll_slept(&b, nap, nap + 2000 * US);
  ck_assert_uint_eq(busypoll_nap(&b), 0);
  int batches = 1;
  while (busypoll_nap(&b) == 0) {
    ck_assert_int_lt(batches, 100);
    batches++;
  }
  ck_assert_int_gt(batches, 10);
  ck_assert_uint_le(b.late_ns, 70 * US);
}
END_TEST

/* A fault that came during a nap paid a wake-up: the nap halves, and a
 * gap too short to nap through ends napping. */
START_TEST(fault_during_nap_halves_it) {
  struct busypoll b = {.adaptive = 1, .nap_ns = 190 * US};
  busypoll_gap(&b, 300 * US, 1);
  ck_assert_uint_eq(b.nap_ns, 95 * US);
  ck_assert_uint_eq(b.nap_woken, 1);
  busypoll_gap(&b, 60 * US, 1);
  ck_assert_uint_eq(b.nap_ns, 47500);
  busypoll_gap(&b, 25 * US, 0);
  ck_assert_uint_eq(busypoll_nap(&b), 0);
}
END_TEST

/* 4 KiB faults come back to back: no nap is worth its wake-up.  A fixed
 * window was asked for and never naps. */
START_TEST(no_nap_for_short_gaps_or_fixed_window) {
  struct busypoll a = {.adaptive = 1}, f = {.adaptive = 0};
  for (int i = 0; i < 100; i++) {
    busypoll_gap(&a, 25 * US, 0);
    busypoll_gap(&f, 500 * US, 0);
  }
  ck_assert_uint_eq(busypoll_nap(&a), 0);
  ck_assert_uint_eq(busypoll_nap(&f), 0);
  ck_assert_uint_eq(a.naps + f.naps, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("busypoll");
  TCase *t = tcase_create("backoff");
  tcase_add_test(t, backs_off_after_misses);
  tcase_add_test(t, fixed_window_always_looks);
  suite_add_tcase(s, t);
  t = tcase_create("nap");
  tcase_add_test(t, naps_through_long_gaps);
  tcase_add_test(t, fault_during_nap_halves_it);
  tcase_add_test(t, one_long_nap_does_not_end_napping);
  tcase_add_test(t, no_nap_for_short_gaps_or_fixed_window);
  suite_add_tcase(s, t);
  t = tcase_create("busy_cpus");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, stops_while_cpus_busy);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

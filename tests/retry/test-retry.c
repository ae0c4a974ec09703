/* The retry layer over the http source and faulty_server.py. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fakehost.h"
#include "util.h"

static struct inst src, retry;

static void teardown(void) {
  inst_close(&retry);
  inst_close(&src);
}

static void open_src(const char *extra) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("FAULTY_URL", "data.bin"));
  const char *set[] = {kv, extra, NULL};
  ck_assert_msg(inst_open(&src, "http", NULL, set) == 0, "%s",
                fakehost_last_error());
}

static void open_retry(const char *src_extra, const char *const *kv) {
  open_src(src_extra);
  ck_assert_msg(inst_open(&retry, "retry", &src.next, kv) == 0, "%s",
                fakehost_last_error());
}

static const char *const fast[] = {"delay=10ms", "max_delay=40ms", NULL};

static int rread(struct inst *i, uint64_t off, uint64_t len) {
  uint8_t *buf = page_alloc(len);
  fakehost_clear_error();
  int r = i->p->read(i->h, buf, len, off, UFK_READ_FAULT);
  if (r == 0)
    ck_assert_msg(mismatch(buf, off, len, DATA_SEED) < 0,
                  "read at %llu is not byte-exact", (unsigned long long)off);
  free(buf);
  return r;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(server_errors_are_retried) {
  open_retry(NULL, fast);
  long before = faulty_requests();
  faulty("mode=500&count=3");
  ck_assert_int_eq(rread(&retry, 40960, 65536), 0);
  ck_assert_int_eq(faulty_requests() - before, 4);
  ck_assert_uint_eq(fakehost_counter("retries"), 3);
  ck_assert_uint_eq(fakehost_counter("gave_up"), 0);
}
END_TEST

START_TEST(without_retry_the_same_fault_fails) {
  open_src(NULL);
  faulty("mode=500&count=3");
  ck_assert_int_eq(rread(&src, 40960, 65536), -1);
  ck_assert_int_eq(fakehost_last_errno(), EIO);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "500"));
}
END_TEST

START_TEST(short_bodies_and_resets_are_retried) {
  open_retry(NULL, fast);
  faulty("mode=truncate&count=2");
  ck_assert_int_eq(rread(&retry, 0, 1 << 20), 0);
  ck_assert_uint_eq(fakehost_counter("retries"), 2);
  faulty("mode=long&count=1");
  ck_assert_int_eq(rread(&retry, 8192, 8192), 0);
  ck_assert_uint_eq(fakehost_counter("retries"), 3);
  faulty("mode=503&count=2");
  ck_assert_int_eq(rread(&retry, 8192, 8192), 0);
  ck_assert_uint_eq(fakehost_counter("retries"), 5);
  /* libcurl itself resends once when a reused connection turns out dead,
   * so two drops may cost the layer one retry or two. */
  faulty("mode=drop&count=2");
  ck_assert_int_eq(rread(&retry, 8192, 8192), 0);
  ck_assert_uint_ge(fakehost_counter("retries"), 6);
}
END_TEST

START_TEST(timeouts_are_retried) {
  open_retry("timeout=300ms", fast);
  faulty("mode=delay&count=1&seconds=1");
  ck_assert_int_eq(rread(&retry, 4096, 4096), 0);
  ck_assert_uint_eq(fakehost_counter("retries"), 1);
}
END_TEST

/* The server closes its socket for 0.6 s: connections are refused, then
 * accepted again. */
START_TEST(refused_connections_are_retried) {
  open_retry(NULL, (const char *[]){"tries=10", "delay=100ms",
                                    "max_delay=200ms", NULL});
  faulty_down(0.6);
  ck_assert_int_eq(rread(&retry, 4096, 4096), 0);
  ck_assert_uint_ge(fakehost_counter("retries"), 1);
  faulty_wait_up();
}
END_TEST

START_TEST(without_retry_a_refused_connection_fails) {
  open_src(NULL);
  faulty_down(1);
  ck_assert_int_eq(rread(&src, 4096, 4096), -1);
  int e = fakehost_last_errno();
  ck_assert_msg(e == ECONNREFUSED, "errno %d: %s", e, fakehost_last_error());
  faulty_wait_up();
}
END_TEST

START_TEST(client_errors_are_not_retried) {
  open_retry(NULL, fast);
  static const char *const modes[] = {"404", "403", "400", "416"};
  static const int errs[] = {ENOENT, EACCES, EINVAL, ERANGE};
  for (int i = 0; i < 4; i++) {
    char q[64];
    snprintf(q, sizeof q, "mode=%s&count=5", modes[i]);
    faulty(q);
    long before = faulty_requests();
    ck_assert_int_eq(rread(&retry, 0, 4096), -1);
    ck_assert_int_eq(faulty_requests() - before, 1);
    ck_assert_int_eq(fakehost_last_errno(), errs[i]);
    /* The message is the one from below, naming status and URL. */
    ck_assert_ptr_nonnull(strstr(fakehost_last_error(), modes[i]));
    ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "data.bin"));
    faulty("mode=&count=0");
  }
  ck_assert_uint_eq(fakehost_counter("retries"), 0);
}
END_TEST

START_TEST(gives_up_after_tries) {
  open_retry(NULL, (const char *[]){"tries=3", "delay=10ms", NULL});
  faulty("mode=500&count=10");
  long before = faulty_requests();
  ck_assert_int_eq(rread(&retry, 0, 4096), -1);
  ck_assert_int_eq(faulty_requests() - before, 3);
  ck_assert_int_eq(fakehost_last_errno(), EIO);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "500"));
  ck_assert_uint_eq(fakehost_counter("retries"), 2);
  ck_assert_uint_eq(fakehost_counter("gave_up"), 1);
}
END_TEST

/* Delays 50, 80 (capped), 80 ms, each at least half that with jitter. */
START_TEST(backoff_doubles_up_to_max_delay) {
  open_retry(NULL,
             (const char *[]){"tries=4", "delay=50ms", "max_delay=80ms", NULL});
  faulty("mode=500&count=3");
  double t0 = now();
  ck_assert_int_eq(rread(&retry, 0, 4096), 0);
  double t = now() - t0;
  ck_assert_msg(t >= 0.105 && t < 2.0, "took %.3f s", t);
}
END_TEST

START_TEST(nowait_misses_are_not_retried) {
  open_src(NULL);
  struct inst cache;
  ck_assert_int_eq(inst_open(&cache, "cache", &src.next,
                             (const char *[]){"chunk=64K", "size=1M", NULL}),
                   0);
  ck_assert_int_eq(inst_open(&retry, "retry", &cache.next, fast), 0);
  /* A layer without caps() keeps the NOWAIT of the stack below. */
  ck_assert_ptr_null(retry.p->caps);
  ck_assert_uint_ne(retry.next.flags & UFK_PLUGIN_NOWAIT, 0);
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(retry.p->read(retry.h, buf, 4096, 0, UFK_READ_NOWAIT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EWOULDBLOCK);
  ck_assert_uint_eq(fakehost_counter("retries"), 0);
  free(buf);
  inst_close(&retry);
  inst_close(&cache);
}
END_TEST

START_TEST(bad_settings_are_refused) {
  open_src(NULL);
  ck_assert_int_eq(
      inst_open(&retry, "retry", &src.next, (const char *[]){"tries=0", NULL}),
      -1);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "tries"));
  inst_close(&retry);
  ck_assert_int_eq(
      inst_open(&retry, "retry", &src.next,
                (const char *[]){"delay=1s", "max_delay=10ms", NULL}),
      -1);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "max_delay"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("retry");
  TCase *tc = tcase_create("retry");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, faulty_reset, teardown);
  tcase_add_test(tc, server_errors_are_retried);
  tcase_add_test(tc, without_retry_the_same_fault_fails);
  tcase_add_test(tc, short_bodies_and_resets_are_retried);
  tcase_add_test(tc, timeouts_are_retried);
  tcase_add_test(tc, refused_connections_are_retried);
  tcase_add_test(tc, without_retry_a_refused_connection_fails);
  tcase_add_test(tc, client_errors_are_not_retried);
  tcase_add_test(tc, gives_up_after_tries);
  tcase_add_test(tc, backoff_doubles_up_to_max_delay);
  tcase_add_test(tc, nowait_misses_are_not_retried);
  tcase_add_test(tc, bad_settings_are_refused);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

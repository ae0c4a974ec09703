/* The readahead layer over cache over http. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakehost.h"
#include "util.h"

#define K (1024ull)

static struct inst src, cache, ra;

static void teardown(void) {
  inst_close(&ra);
  inst_close(&cache);
  inst_close(&src);
}

static const char *const ra_kv[] = {"window=64K", "max_window=256K",
                                    "threads=2", NULL};

static void open_stack(const char *env_name) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url(env_name, "data.bin"));
  ck_assert_int_eq(inst_open(&src, "http", NULL, (const char *[]){kv, NULL}),
                   0);
  ck_assert_msg(inst_open(&cache, "cache", &src.next,
                          (const char *[]){"chunk=64K", "size=4M", NULL}) == 0,
                "%s", fakehost_last_error());
  ck_assert_msg(inst_open(&ra, "readahead", &cache.next, ra_kv) == 0, "%s",
                fakehost_last_error());
}

static void read_ok(uint64_t off, uint64_t len) {
  uint8_t *buf = page_alloc(len);
  ck_assert_msg(ra.p->read(ra.h, buf, len, off, UFK_READ_FAULT) == 0,
                "read %llu: %s", (unsigned long long)off,
                fakehost_last_error());
  ck_assert_int_lt(mismatch(buf, off, len, DATA_SEED), 0);
  free(buf);
}

/* Until the background threads have handled `bytes` of prefetches. */
static void drained(uint64_t bytes) {
  uint64_t done = 0;
  for (int i = 0; i < 500; i++) {
    done =
        counter_now("prefetch_bytes") + counter_now("prefetch_errors") * 64 * K;
    if (done >= bytes) break;
    usleep(10000);
  }
  ck_assert_uint_eq(done, bytes);
}

/* Windows: 64K at 8K, then 128K at 72K, then 256K (the max) at 200K, 456K,
 * 712K, 968K and 1224K, each queued as the reader enters the one before. */
START_TEST(window_doubles_while_sequential) {
  open_stack("NGINX_URL");
  read_ok(0, 4096); /* a new stream: nothing yet */
  ck_assert_uint_eq(fakehost_counter("windows"), 0);
  read_ok(4096, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 1);
  drained(64 * K);
  read_ok(8192, 4096); /* enters [8K, 72K) */
  ck_assert_uint_eq(fakehost_counter("windows"), 2);
  drained(192 * K);
  read_ok(12288, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 2);
  for (uint64_t off = 16 * K; off < 1024 * K; off += 4096)
    read_ok(off, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 7);
  drained((64 + 128 + 5 * 256) * K);
  /* [0, 1480K) touches 24 chunks; each was fetched exactly once, whether
   * by a prefetch or by a demand read that got there first. */
  ck_assert_uint_eq(counter_now("misses"), 24);
  ck_assert_uint_eq(counter_now("requests"), 25);
}
END_TEST

/* The core maps before it reads, and a page the cache holds is served by
 * the map alone: those accesses move the stream on like reads, so a
 * reader whose every other page hits (2 MiB pages under 4 MiB chunks)
 * still gets its windows.  The pointer goes back to the cache. */
START_TEST(hits_through_map_move_the_stream) {
  open_stack("NGINX_URL");
  ck_assert_ptr_nonnull(ra.p->map);
  read_ok(0, 4096);
  read_ok(4096, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 1);
  drained(64 * K); /* [8K, 72K) is in the cache now */
  const void *p = ra.p->map(ra.h, 8192, 4096);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_lt(mismatch(p, 8192, 4096, DATA_SEED), 0);
  ck_assert_uint_eq(fakehost_counter("windows"), 2);
  ra.p->release(ra.h, p, 8192, 4096);
}
END_TEST

START_TEST(random_reads_prefetch_nothing) {
  open_stack("NGINX_URL");
  uint64_t x = 3;
  for (int i = 0; i < 300; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    /* Even pages only: never the page right after an earlier read. */
    read_ok(((x >> 20) % (DATA_SIZE / 8192)) * 8192, 4096);
  }
  ck_assert_uint_eq(fakehost_counter("windows"), 0);
  ck_assert_uint_eq(counter_now("prefetch_bytes"), 0);
}
END_TEST

START_TEST(random_access_starts_over) {
  open_stack("NGINX_URL");
  for (uint64_t off = 0; off < 512 * K; off += 4096)
    read_ok(off, 4096);
  uint64_t w = fakehost_counter("windows");
  drained((64 + 128 + 3 * 256) * K);
  read_ok(6 * 1024 * K, 4096);
  read_ok(6 * 1024 * K + 4096, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), w + 1);
  drained((64 + 128 + 3 * 256 + 64) * K);
}
END_TEST

START_TEST(interleaved_streams_are_each_seen) {
  open_stack("NGINX_URL");
  read_ok(0, 4096);
  read_ok(4096 * K, 4096);
  read_ok(4096, 4096);
  read_ok(4096 * K + 4096, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 2);
  drained(128 * K);
}
END_TEST

START_TEST(nowait_passes_through) {
  open_stack("NGINX_URL");
  /* A layer without caps() keeps the NOWAIT of the stack below. */
  ck_assert_ptr_null(ra.p->caps);
  ck_assert_uint_ne(ra.next.flags & UFK_PLUGIN_NOWAIT, 0);
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(ra.p->read(ra.h, buf, 4096, 0, UFK_READ_NOWAIT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EWOULDBLOCK);
  free(buf);
  read_ok(0, 4096);
  buf = page_alloc(4096);
  ck_assert_int_eq(ra.p->read(ra.h, buf, 4096, 4096, UFK_READ_NOWAIT), 0);
  ck_assert_int_lt(mismatch(buf, 4096, 4096, DATA_SEED), 0);
  free(buf);
}
END_TEST

START_TEST(failed_prefetch_is_not_data) {
  open_stack("FAULTY_URL");
  read_ok(0, 4096);
  faulty("mode=500&count=1");
  read_ok(4096, 4096); /* queues [8K, 72K): chunk 1 fails to prefetch */
  for (int i = 0; i < 500 && !counter_now("prefetch_errors"); i++)
    usleep(10000);
  ck_assert_uint_eq(counter_now("prefetch_errors"), 1);
  read_ok(64 * K, 64 * K);
}
END_TEST

START_TEST(no_prefetch_below_is_harmless) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "data.bin"));
  ck_assert_int_eq(inst_open(&src, "http", NULL, (const char *[]){kv, NULL}),
                   0);
  ck_assert_int_eq(inst_open(&ra, "readahead", &src.next, ra_kv), 0);
  for (uint64_t off = 0; off < 256 * K; off += 4096)
    read_ok(off, 4096);
  ck_assert_uint_eq(fakehost_counter("windows"), 0);
}
END_TEST

START_TEST(bad_settings_are_refused) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "data.bin"));
  ck_assert_int_eq(inst_open(&src, "http", NULL, (const char *[]){kv, NULL}),
                   0);
  static const char *const bad[][2] = {{"window=1000", "window"},
                                       {"max_window=4K", "max_window"},
                                       {"threads=0", "threads"}};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(inst_open(&ra, "readahead", &src.next,
                               (const char *[]){bad[i][0], NULL}),
                     -1);
    ck_assert_ptr_nonnull(strstr(fakehost_last_error(), bad[i][1]));
    inst_close(&ra);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("readahead");
  TCase *tc = tcase_create("readahead");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, faulty_reset, teardown);
  tcase_add_test(tc, window_doubles_while_sequential);
  tcase_add_test(tc, hits_through_map_move_the_stream);
  tcase_add_test(tc, random_reads_prefetch_nothing);
  tcase_add_test(tc, random_access_starts_over);
  tcase_add_test(tc, interleaved_streams_are_each_seen);
  tcase_add_test(tc, nowait_passes_through);
  tcase_add_test(tc, failed_prefetch_is_not_data);
  tcase_add_test(tc, no_prefetch_below_is_harmless);
  tcase_add_test(tc, bad_settings_are_refused);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

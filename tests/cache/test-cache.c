/* The cache layer over the http source. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakehost.h"
#include "util.h"

#define K64 65536ull

static struct inst src, cache;

static void teardown(void) {
  inst_close(&cache);
  inst_close(&src);
}

/* http on env_name's data.bin with a cache of the given settings on top. */
static void open_stack(const char *env_name, const char *const *cache_kv) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url(env_name, "data.bin"));
  const char *set[] = {kv, NULL};
  ck_assert_msg(inst_open(&src, "http", NULL, set) == 0, "%s",
                fakehost_last_error());
  ck_assert_msg(inst_open(&cache, "cache", &src.next, cache_kv) == 0, "%s",
                fakehost_last_error());
}

static int cread(void *buf, uint64_t len, uint64_t off, uint32_t flags) {
  return cache.p->read(cache.h, buf, len, off, flags);
}

static void read_ok(uint64_t off, uint64_t len) {
  uint8_t *buf = page_alloc(len);
  ck_assert_msg(cread(buf, len, off, UFK_READ_FAULT) == 0, "read %llu: %s",
                (unsigned long long)off, fakehost_last_error());
  int64_t bad = mismatch(buf, off, len, DATA_SEED);
  ck_assert_msg(bad < 0, "byte %lld of read at %llu differs", (long long)bad,
                (unsigned long long)off);
  free(buf);
}

static uint64_t C(const char *name) {
  return fakehost_counter(name);
}

START_TEST(reads_are_byte_exact) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  ck_assert_int_eq(cache.p->get_size(cache.h), (int64_t)DATA_SIZE);
  const uint64_t pages = DATA_SIZE / 4096;
  read_ok(60 * 1024, 12 * 1024);   /* spans two chunks */
  read_ok(DATA_SIZE - 4096, 4096); /* the short last chunk */
  read_ok(0, 3 * K64 + 4096);
  uint64_t x = 9;
  for (int i = 0; i < 400; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t n = 1 + (x >> 33) % 40;
    uint64_t p = (x >> 13) % pages;
    if (p + n > pages) n = pages - p;
    read_ok(p * 4096, n * 4096);
  }
  /* Every fetch is one request; 16 slots for 129 chunks must evict. */
  ck_assert_uint_eq(C("requests"), C("misses") + 1);
  ck_assert_uint_gt(C("hits"), 0);
  ck_assert_uint_gt(C("evictions"), 0);
  ck_assert_uint_le(C("misses") - C("evictions"), 16);
}
END_TEST

static void *read_page_8k(void *opaque) {
  uint8_t *buf = page_alloc(4096);
  intptr_t ok = cread(buf, 4096, 8192, UFK_READ_FAULT) == 0 &&
                mismatch(buf, 8192, 4096, DATA_SEED) < 0;
  free(buf);
  (void)opaque;
  return (void *)ok;
}

static void *read_page_8k_fails(void *opaque) {
  uint8_t *buf = page_alloc(4096);
  int r = cread(buf, 4096, 8192, UFK_READ_FAULT);
  int e = errno;
  free(buf);
  (void)opaque;
  return (void *)(intptr_t)(r == -1 && e == EIO);
}

static void run_readers(void *(*fn)(void *), int n) {
  pthread_t t[16];
  for (int i = 0; i < n; i++)
    pthread_create(&t[i], NULL, fn, NULL);
  for (int i = 0; i < n; i++) {
    void *ok;
    pthread_join(t[i], &ok);
    ck_assert_msg(ok, "reader %d failed: %s", i, fakehost_last_error());
  }
}

/* The server holds the first request for 0.5 s, so all 16 readers arrive
 * while it is in flight: they must share it. */
START_TEST(concurrent_misses_fetch_once) {
  open_stack("FAULTY_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  long before = faulty_requests();
  faulty("mode=delay&count=1&seconds=0.5");
  run_readers(read_page_8k, 16);
  ck_assert_int_eq(faulty_requests() - before, 1);
  ck_assert_uint_eq(C("misses"), 1);
  ck_assert_uint_eq(C("hits"), 15);
  ck_assert_uint_eq(C("bytes_fetched"), K64 * 2 + 2); /* cache, http, probe */
}
END_TEST

START_TEST(failed_fetch_wakes_waiters_and_caches_nothing) {
  open_stack("FAULTY_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  long before = faulty_requests();
  faulty("mode=500&count=1&seconds=0.5");
  run_readers(read_page_8k_fails, 8);
  ck_assert_int_eq(faulty_requests() - before, 1);
  /* Nothing was kept: the next read fetches again, and gets good data. */
  read_ok(8192, 4096);
  ck_assert_int_eq(faulty_requests() - before, 2);
  ck_assert_uint_eq(C("misses"), 2);
}
END_TEST

static void expect(uint64_t hits, uint64_t misses, uint64_t evictions) {
  ck_assert_uint_eq(C("hits"), hits);
  ck_assert_uint_eq(C("misses"), misses);
  ck_assert_uint_eq(C("evictions"), evictions);
}

START_TEST(lru_eviction_respects_size) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=256K", NULL});
  for (int c = 0; c < 4; c++)
    read_ok(c * K64, 4096);
  expect(0, 4, 0);
  read_ok(0, 4096); /* chunk 0 becomes the most recent */
  expect(1, 4, 0);
  read_ok(4 * K64, 4096); /* evicts chunk 1, the least recent */
  expect(1, 5, 1);
  read_ok(0, 4096);
  expect(2, 5, 1);
  read_ok(1 * K64, 4096); /* gone: fetched again, evicting chunk 2 */
  expect(2, 6, 2);
  for (int c = 10; c < 20; c++)
    read_ok(c * K64, 4096);
  expect(2, 16, 12);
  for (int c = 19; c >= 16; c--) /* exactly the last four are kept */
    read_ok(c * K64, 4096);
  expect(6, 16, 12);
  read_ok(15 * K64, 4096);
  expect(6, 17, 13);
}
END_TEST

START_TEST(nowait_serves_hits_only) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  struct ufk_caps caps = {0};
  cache.p->caps(cache.h, &caps);
  ck_assert_uint_ne(caps.flags & UFK_PLUGIN_NOWAIT, 0);
  ck_assert_uint_eq(caps.flags & UFK_PLUGIN_FAST, 0);
  uint8_t *buf = page_alloc(8192);
  fakehost_clear_error();
  ck_assert_int_eq(cread(buf, 4096, K64, UFK_READ_NOWAIT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EWOULDBLOCK);
  ck_assert_uint_eq(C("requests"), 1); /* the probe only */
  read_ok(K64, 4096);
  ck_assert_int_eq(cread(buf, 4096, K64 + 8192, UFK_READ_NOWAIT), 0);
  ck_assert_int_lt(mismatch(buf, K64 + 8192, 4096, DATA_SEED), 0);
  /* Spanning into a chunk that is not cached: no partial success. */
  ck_assert_int_eq(cread(buf, 8192, 2 * K64 - 4096, UFK_READ_NOWAIT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EWOULDBLOCK);
  free(buf);
}
END_TEST

START_TEST(file_backed_cache) {
  char path[512];
  snprintf(path, sizeof path, "file=%s/cache-%d.bin", env("TEST_TMP"),
           (int)getpid());
  open_stack("NGINX_URL",
             (const char *[]){"chunk=64K", "size=512K", path, NULL});
  ck_assert_int_ne(access(path + 5, F_OK), 0); /* unlinked at once */
  for (uint64_t off = 0; off < 2 * 1024 * 1024; off += 12288)
    read_ok(off, 8192);
  read_ok(0, 8192);
  ck_assert_uint_gt(C("evictions"), 0);
}
END_TEST

START_TEST(existing_cache_file_is_not_clobbered) {
  char path[512], kv[600];
  snprintf(path, sizeof path, "%s/keep-%d.bin", env("TEST_TMP"), (int)getpid());
  FILE *f = fopen(path, "w");
  fputs("precious", f);
  fclose(f);
  snprintf(kv, sizeof kv, "file=%s", path);
  char u[600];
  snprintf(u, sizeof u, "url=%s", url("NGINX_URL", "data.bin"));
  ck_assert_int_eq(inst_open(&src, "http", NULL, (const char *[]){u, NULL}), 0);
  ck_assert_int_eq(inst_open(&cache, "cache", &src.next,
                             (const char *[]){"chunk=64K", kv, NULL}),
                   -1);
  ck_assert_int_eq(fakehost_last_errno(), EEXIST);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), path));
  ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

static const uint8_t *cmap(uint64_t off, uint64_t len) {
  return cache.p->map(cache.h, off, len);
}

static void crelease(const void *p, uint64_t off, uint64_t len) {
  cache.p->release(cache.h, p, off, len);
}

/* A mapped chunk is held, as a read in progress is, until it is released:
 * churning far more than the capacity leaves it in place, and once
 * released it is reclaimed like any other. */
START_TEST(map_holds_a_chunk_until_release) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=512K", NULL});
  ck_assert_ptr_null(cmap(0, 4096)); /* not cached: map never fetches */
  read_ok(0, 4096);
  read_ok(K64, 4096);
  const uint8_t *a = cmap(4096, 4096);
  const uint8_t *b = cmap(K64, 8192);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_null(cmap(K64 - 4096, 8192)); /* spans two chunks */
  ck_assert_uint_eq(C("hits"), 2);
  for (int c = 3; c < 40; c++)
    read_ok(c * K64, 4096);
  ck_assert_int_lt(mismatch(a, 4096, 4096, DATA_SEED), 0);
  ck_assert_int_lt(mismatch(b, K64, 8192, DATA_SEED), 0);
  const uint8_t *again = cmap(4096, 4096);
  ck_assert_ptr_eq(again, a);
  crelease(again, 4096, 4096);
  crelease(a, 4096, 4096);
  crelease(b, K64, 8192);
  uint64_t misses = C("misses");
  for (int c = 40; c < 80; c++)
    read_ok(c * K64, 4096);
  read_ok(0, 4096);
  ck_assert_uint_eq(C("misses"), misses + 41); /* chunk 0 was reclaimed */
}
END_TEST

struct waiting_read {
  uint64_t off;
  int done, rc;
};

static void *read_in_thread(void *arg) {
  struct waiting_read *w = arg;
  uint8_t *buf = page_alloc(4096);
  w->rc = cread(buf, 4096, w->off, UFK_READ_FAULT);
  if (w->rc == 0 && mismatch(buf, w->off, 4096, DATA_SEED) >= 0) w->rc = -2;
  free(buf);
  __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* With the only slot mapped, a read of another chunk waits for the
 * release, then goes on. */
START_TEST(release_frees_the_slot_for_a_waiting_read) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=64K", NULL});
  read_ok(0, 4096);
  const uint8_t *a = cmap(0, K64);
  ck_assert_ptr_nonnull(a);
  struct waiting_read w = {.off = 3 * K64};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, read_in_thread, &w), 0);
  usleep(200 * 1000);
  ck_assert_msg(!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE),
                "a read took the slot of a mapped chunk");
  ck_assert_int_lt(mismatch(a, 0, K64, DATA_SEED), 0);
  crelease(a, 0, K64);
  pthread_join(t, NULL);
  ck_assert_int_eq(w.rc, 0);
}
END_TEST

START_TEST(prefetch_fills_the_cache) {
  open_stack("NGINX_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  ck_assert_int_eq(cache.p->prefetch(cache.h, 0, 4 * K64), 0);
  ck_assert_uint_eq(C("misses"), 4);
  read_ok(0, 4 * K64);
  ck_assert_uint_eq(C("misses"), 4);
  ck_assert_uint_eq(C("hits"), 4);
  ck_assert_int_eq(cache.p->prefetch(cache.h, 0, 5 * K64), 0);
  ck_assert_uint_eq(C("misses"), 5);
}
END_TEST

START_TEST(errors_are_not_cached) {
  open_stack("FAULTY_URL", (const char *[]){"chunk=64K", "size=1M", NULL});
  faulty("mode=404&count=1");
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(cread(buf, 4096, 0, UFK_READ_FAULT), -1);
  ck_assert_int_eq(fakehost_last_errno(), ENOENT);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "404"));
  free(buf);
  read_ok(0, 4096);
  ck_assert_uint_eq(C("misses"), 2);
}
END_TEST

/* parts=4 over 1 MiB chunks: each miss is four 256 KiB requests, whose
 * bytes land in the right places; the short last chunk (20 KiB) is too
 * small to split. */
START_TEST(parts_split_a_fetch) {
  open_stack("FAULTY_URL",
             (const char *[]){"chunk=1M", "size=4M", "parts=4", NULL});
  long before = faulty_requests();
  read_ok(0, 2 << 20);
  ck_assert_int_eq(faulty_requests() - before, 8);
  read_ok(DATA_SIZE - 4096, 4096);
  ck_assert_int_eq(faulty_requests() - before, 9);
  read_ok((1 << 20) - 4096, 8192); /* hits */
  ck_assert_uint_eq(C("misses"), 3);
  /* cache's and http's counters, and the size probe */
  ck_assert_uint_eq(C("bytes_fetched"), 2 * ((2 << 20) + 20 * 1024) + 2);
}
END_TEST

/* One part failing fails the fetch, keeps nothing, and the next read
 * fetches every part again. */
START_TEST(failed_part_fails_the_fetch) {
  open_stack("FAULTY_URL",
             (const char *[]){"chunk=1M", "size=4M", "parts=4", NULL});
  long before = faulty_requests();
  faulty("mode=500&count=1");
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(cread(buf, 4096, 0, UFK_READ_FAULT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EIO);
  free(buf);
  ck_assert_int_eq(faulty_requests() - before, 4);
  read_ok(0, 1 << 20);
  ck_assert_int_eq(faulty_requests() - before, 8);
  ck_assert_uint_eq(C("misses"), 2);
}
END_TEST

static void bad_cache(const char *a, const char *needle) {
  char u[600];
  snprintf(u, sizeof u, "url=%s", url("NGINX_URL", "data.bin"));
  ck_assert_int_eq(inst_open(&src, "http", NULL, (const char *[]){u, NULL}), 0);
  ck_assert_int_eq(
      inst_open(&cache, "cache", &src.next, (const char *[]){a, NULL}), -1);
  ck_assert_msg(strstr(fakehost_last_error(), needle), "'%s' lacks '%s'",
                fakehost_last_error(), needle);
  teardown();
}

START_TEST(bad_settings_are_refused) {
  bad_cache("chunk=5000", "chunk");
  bad_cache("chunk=2K", "chunk");
  bad_cache("size=1M", "size"); /* smaller than the default 4M chunk */
  bad_cache("parts=0", "parts");
  bad_cache("parts=17", "parts");
  struct ufk_config *cfg = fakehost_config(NULL, NULL);
  const struct ufk_plugin *p = fakehost_load(PLUGIN_DIR "/libcache.so");
  ck_assert_ptr_null(p->create(cfg, NULL)); /* a layer needs a below */
  fakehost_config_free(cfg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cache");
  TCase *tc = tcase_create("cache");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, faulty_reset, teardown);
  tcase_add_test(tc, reads_are_byte_exact);
  tcase_add_test(tc, concurrent_misses_fetch_once);
  tcase_add_test(tc, failed_fetch_wakes_waiters_and_caches_nothing);
  tcase_add_test(tc, lru_eviction_respects_size);
  tcase_add_test(tc, nowait_serves_hits_only);
  tcase_add_test(tc, file_backed_cache);
  tcase_add_test(tc, existing_cache_file_is_not_clobbered);
  tcase_add_test(tc, map_holds_a_chunk_until_release);
  tcase_add_test(tc, release_frees_the_slot_for_a_waiting_read);
  tcase_add_test(tc, prefetch_fills_the_cache);
  tcase_add_test(tc, errors_are_not_cached);
  tcase_add_test(tc, parts_split_a_fetch);
  tcase_add_test(tc, failed_part_fails_the_fetch);
  tcase_add_test(tc, bad_settings_are_refused);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

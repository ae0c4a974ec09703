/* The cache layer's dir (plugins/cache/disk.c) over the http source on
 * nginx: entries outlive the instance, the bound holds, and a source that
 * names no version is refused.  tests/http/disk-cache.sh restarts a whole
 * daemon, damages entries and kills it in the middle of writes. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakehost.h"
#include "util.h"

#define CHUNKS ((DATA_SIZE + (1 << 20) - 1) >> 20)

static struct inst src, cache;
static char dir[600];

static void setup(void) {
  snprintf(dir, sizeof dir, "%s/dir-%d", env("TEST_TMP"), (int)getpid());
}

static void teardown(void) {
  inst_close(&cache);
  inst_close(&src);
}

static void open_src(void) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "data.bin"));
  ck_assert_msg(inst_open(&src, "http", NULL, (const char *[]){kv, NULL}) == 0,
                "%s", fakehost_last_error());
}

static int open_cache_with(struct ufk_next *below, const char *dir_size,
                           const char *size, const char *queue) {
  char d[700], s[100], m[100], q[100];
  snprintf(d, sizeof d, "dir=%s", dir);
  snprintf(s, sizeof s, "dir_size=%s", dir_size);
  snprintf(m, sizeof m, "size=%s", size);
  snprintf(q, sizeof q, "dir_queue=%s", queue);
  return inst_open(&cache, "cache", below,
                   (const char *[]){"chunk=1M", m, d, s, q, NULL});
}

static int open_cache(struct ufk_next *below, const char *dir_size) {
  return open_cache_with(below, dir_size, "16M", "8");
}

static void read_all(void) {
  uint8_t *buf = page_alloc(1 << 20);
  for (uint64_t off = 0; off < DATA_SIZE; off += 1 << 20) {
    uint64_t len = DATA_SIZE - off < (1 << 20) ? DATA_SIZE - off : 1 << 20;
    ck_assert_msg(cache.p->read(cache.h, buf, len, off, UFK_READ_FAULT) == 0,
                  "%s", fakehost_last_error());
    ck_assert_int_lt(mismatch(buf, off, len, DATA_SEED), 0);
  }
  free(buf);
}

static int entries(void) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

START_TEST(entries_outlive_the_instance) {
  open_src();
  ck_assert_msg(open_cache(&src.next, "1G") == 0, "%s", fakehost_last_error());
  read_all();
  /* http's requests: the probe, then one per chunk */
  ck_assert_uint_eq(fakehost_counter("requests"), 1 + CHUNKS);
  ck_assert_uint_eq(fakehost_counter("remote_fetches"), CHUNKS);
  teardown(); /* the writer's queue is written out first */
  ck_assert_uint_eq(fakehost_counter("disk_writes"), CHUNKS);
  open_src();
  ck_assert_msg(open_cache(&src.next, "1G") == 0, "%s", fakehost_last_error());
  read_all();
  ck_assert_uint_eq(fakehost_counter("requests"), 2 + CHUNKS);
  ck_assert_uint_eq(fakehost_counter("disk_hits"), CHUNKS);
  ck_assert_uint_eq(fakehost_counter("remote_fetches"), CHUNKS);
  ck_assert_uint_eq(fakehost_counter("disk_skipped"), 0);
  ck_assert_int_eq(entries(), CHUNKS);
}
END_TEST

/* One copy queued at a time: the others wait by their place and are
 * written from the memory cache, which holds every chunk, so none is
 * lost however far behind the writer is. */
START_TEST(a_writer_behind_writes_from_memory) {
  open_src();
  ck_assert_msg(open_cache_with(&src.next, "1G", "16M", "1") == 0, "%s",
                fakehost_last_error());
  read_all();
  teardown();
  ck_assert_uint_eq(fakehost_counter("disk_writes"), CHUNKS);
  ck_assert_uint_eq(fakehost_counter("disk_skipped"), 0);
  ck_assert_int_eq(entries(), CHUNKS);
}
END_TEST

/* A memory cache of two chunks lets go of chunks before a writer behind
 * gets to them: those are counted skipped, never written from a slot
 * that holds another chunk, and every entry written reads back right. */
START_TEST(chunks_gone_from_memory_are_skipped) {
  open_src();
  ck_assert_msg(open_cache_with(&src.next, "1G", "2M", "1") == 0, "%s",
                fakehost_last_error());
  read_all();
  teardown();
  uint64_t w = fakehost_counter("disk_writes");
  ck_assert_uint_eq(w + fakehost_counter("disk_skipped"), CHUNKS);
  ck_assert_int_eq(entries(), (int)w);
  open_src();
  ck_assert_msg(open_cache(&src.next, "1G") == 0, "%s", fakehost_last_error());
  read_all(); /* byte-exact: an entry of the wrong bytes would fail here */
  ck_assert_uint_eq(fakehost_counter("disk_discarded"), 0);
  ck_assert_uint_eq(fakehost_counter("disk_hits"), w);
}
END_TEST

/* 3200K holds three entries of 1 MiB and a 96-byte header, not four, and
 * the short last chunk (20K) besides. */
START_TEST(the_bound_holds) {
  open_src();
  ck_assert_msg(open_cache(&src.next, "3200K") == 0, "%s",
                fakehost_last_error());
  read_all();
  inst_close(&cache);
  ck_assert_int_eq(entries(), 4);
  ck_assert_uint_eq(fakehost_counter("disk_evictions"), CHUNKS - 4);
}
END_TEST

START_TEST(one_dir_one_bound) {
  open_src();
  ck_assert_msg(open_cache(&src.next, "1G") == 0, "%s", fakehost_last_error());
  struct inst first = cache;
  ck_assert_int_eq(open_cache(&src.next, "2G"), -1);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "already in use"));
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "dir_size 1073741824"));
  inst_close(&cache);
  cache = first;
}
END_TEST

static int no_identity(void *h, char *buf, size_t len) {
  (void)h, (void)buf, (void)len;
  return -1;
}

static void refused(struct ufk_next *below) {
  ck_assert_int_eq(open_cache(below, "1G"), -1);
  ck_assert_int_eq(fakehost_last_errno(), EINVAL);
  ck_assert_msg(strstr(fakehost_last_error(), "names no version"), "%s",
                fakehost_last_error());
}

/* A source that cannot name its version, and a daemon too old to say. */
START_TEST(a_source_without_a_version_is_refused) {
  open_src();
  struct ufk_next below = src.next;
  below.identity = no_identity;
  refused(&below);
  inst_close(&cache);
  below.size = offsetof(struct ufk_next, identity);
  below.identity = NULL;
  refused(&below);
}
END_TEST

int main(void) {
  Suite *s = suite_create("disk");
  TCase *tc = tcase_create("disk");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, entries_outlive_the_instance);
  tcase_add_test(tc, a_writer_behind_writes_from_memory);
  tcase_add_test(tc, chunks_gone_from_memory_are_skipped);
  tcase_add_test(tc, the_bound_holds);
  tcase_add_test(tc, one_dir_one_bound);
  tcase_add_test(tc, a_source_without_a_version_is_refused);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

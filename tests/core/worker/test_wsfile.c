/* The working-set file (core/worker/wsfile.c): what is written reads back
 * the same, and every malformed file is refused with a message naming what
 * is wrong, never half-read. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkrun.h"
#include "wsfile.h"

static char dir[64], path[128], err[512];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/uffdkit-wsfile.XXXXXX");
  ck_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/ws", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(dir);
}

/* Pages in a first-touch order with runs, jumps back and far ahead. */
static const uint64_t PAGES[] = {7, 8, 9, 10, 0, 1, 4095, 4094, 100, 3000, 2};
#define N (sizeof PAGES / sizeof *PAGES)

static void write_good(void) {
  struct wset w = {.page_size = 4096,
                   .source_size = 4096ull * 4096,
                   .pages = (uint64_t *)PAGES,
                   .n = N};
  snprintf(w.identity, sizeof w.identity, "file:/srv/mem size=16777216");
  ck_assert_msg(wset_write(path, &w, err, sizeof err) == 0, "%s", err);
}

static size_t slurp(uint8_t *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  ck_assert(f);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

static void spit(const uint8_t *buf, size_t n) {
  FILE *f = fopen(path, "w");
  ck_assert(f);
  ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
  ck_assert(fclose(f) == 0);
}

/* Reading must fail with a message holding `want`, and leave nothing to
 * free. */
static void refused(const char *what, const char *want) {
  struct wset w;
  memset(&w, 0xa5, sizeof w);
  ck_assert_msg(wset_read(path, &w, err, sizeof err) < 0, "%s was accepted",
                what);
  ck_assert_msg(strstr(err, want), "%s: message \"%s\" does not say \"%s\"",
                what, err, want);
  ck_assert_msg(w.pages == NULL && w.n == 0, "%s: pages left behind", what);
}

START_TEST(round_trip) {
  write_good();
  struct wset w;
  ck_assert_msg(wset_read(path, &w, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(w.page_size, 4096);
  ck_assert_uint_eq(w.source_size, 4096ull * 4096);
  ck_assert_str_eq(w.identity, "file:/srv/mem size=16777216");
  ck_assert_uint_eq(w.n, N);
  for (size_t i = 0; i < N; i++)
    ck_assert_msg(w.pages[i] == PAGES[i], "entry %zu: %llu, wrote %llu", i,
                  (unsigned long long)w.pages[i], (unsigned long long)PAGES[i]);
  wset_free(&w);
  /* A run of pages costs a byte each. */
  struct stat st;
  ck_assert(stat(path, &st) == 0);
  ck_assert_int_le(st.st_size, 40 + 28 + 3 * (int)N);
}
END_TEST

START_TEST(huge_pages_and_empty) {
  struct wset w = {.page_size = 2u << 20, .source_size = 1ull << 30, .n = 0};
  ck_assert_msg(wset_write(path, &w, err, sizeof err) == 0, "%s", err);
  struct wset r;
  ck_assert_msg(wset_read(path, &r, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(r.page_size, 2u << 20);
  ck_assert_uint_eq(r.n, 0);
  ck_assert_str_eq(r.identity, "");
  wset_free(&r);
}
END_TEST

START_TEST(malformed_refused) {
  uint8_t good[4096], b[4096];
  write_good();
  size_t n = slurp(good, sizeof good);
  size_t body = 40 + strlen("file:/srv/mem size=16777216");

  memcpy(b, good, n);
  b[0] = 'X';
  spit(b, n);
  refused("a bad magic", "not a uffdkit working-set file");

  memcpy(b, good, n);
  b[8] = 2;
  spit(b, n);
  refused("version 2", "not a uffdkit working-set file");

  spit(good, 20);
  refused("a file shorter than its header", "not a uffdkit working-set file");

  memcpy(b, good, n);
  b[12] = 0;
  b[13] = 0x20; /* 8 KiB pages */
  spit(b, n);
  refused("an 8 KiB page size", "bad page size");

  memcpy(b, good, n);
  b[24] = 200; /* more entries than bytes in the body */
  spit(b, n);
  refused("a count past the body", "bad page size, count or source size");

  memcpy(b, good, n);
  b[32] = 0xff;
  b[33] = 0xff;
  spit(b, n);
  refused("an identity longer than the file", "does not fit");

  spit(good, n - 1);
  refused("a cut entry", "is cut short");

  memcpy(b, good, n);
  b[n] = 0;
  spit(b, n + 1);
  refused("a byte after the last entry", "after the last entry");

  memcpy(b, good, n);
  b[body] = 0xfe; /* first entry: a delta of 8191 pages, then more */
  b[body + 1] = 0x7f;
  spit(b, n);
  refused("an entry beyond the source", "beyond the source");

  unlink(path);
  refused("a missing file", strerror(ENOENT));
}
END_TEST

/* A write that cannot happen says where, and leaves no temporary file. */
START_TEST(write_failure_named) {
  char bad[192];
  snprintf(bad, sizeof bad, "%s/no/such/dir/ws", dir);
  struct wset w = {.page_size = 4096, .source_size = 4096, .n = 0};
  ck_assert(wset_write(bad, &w, err, sizeof err) < 0);
  ck_assert_msg(strstr(err, "/no/such/dir/ws"), "message: %s", err);
  ck_assert_msg(strstr(err, strerror(ENOENT)), "message: %s", err);
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-worker-wsfile");
  const struct ufk_check_case cases[] = {
      {"round_trip", round_trip},
      {"huge_pages_and_empty", huge_pages_and_empty},
      {"malformed_refused", malformed_refused},
      {"write_failure_named", write_failure_named},
  };
  ufk_check_cases(s, cases, sizeof cases / sizeof *cases, setup, teardown, 0);
  return ufk_check_run(s);
}

/* The http source against nginx and faulty_server.py. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "fakehost.h"
#include "util.h"

static struct inst h;

static void open_http(const char *u, const char *extra) {
  const char *kv[] = {u, extra, NULL};
  ck_assert_msg(inst_open(&h, "http", NULL, kv) == 0, "%s",
                fakehost_last_error());
}

static void teardown(void) {
  inst_close(&h);
}

/* A tag in the query keeps each test's lines apart in the shared log. */
static const char *nginx_data(const char *tag) {
  static char kv[600];
  snprintf(kv, sizeof kv, "url=%s/data.bin?t=%s", env("NGINX_URL"), tag);
  return kv;
}

static void read_ok(uint64_t off, uint64_t len) {
  uint8_t *buf = page_alloc(len);
  int r = h.p->read(h.h, buf, len, off, UFK_READ_FAULT);
  ck_assert_msg(r == 0, "read %llu+%llu: %s", (unsigned long long)off,
                (unsigned long long)len, fakehost_last_error());
  int64_t bad = mismatch(buf, off, len, DATA_SEED);
  ck_assert_msg(bad < 0, "byte %lld of read at %llu differs", (long long)bad,
                (unsigned long long)off);
  free(buf);
}

/* Fails with errno e and a message containing needle. */
static void read_fails(uint64_t off, uint64_t len, int e, const char *needle) {
  uint8_t *buf = page_alloc(len);
  fakehost_clear_error();
  ck_assert_int_eq(h.p->read(h.h, buf, len, off, UFK_READ_FAULT), -1);
  ck_assert_msg(fakehost_last_errno() == e, "errno %d (%s), want %d: %s",
                fakehost_last_errno(), strerror(fakehost_last_errno()), e,
                fakehost_last_error());
  ck_assert_int_eq(errno, e);
  ck_assert_msg(strstr(fakehost_last_error(), needle), "'%s' lacks '%s'",
                fakehost_last_error(), needle);
  free(buf);
}

START_TEST(reads_are_byte_exact) {
  open_http(nginx_data("exact"), NULL);
  ck_assert_int_eq(h.p->get_size(h.h), (int64_t)DATA_SIZE);
  const uint64_t pages = DATA_SIZE / 4096;
  read_ok(0, 4096);
  read_ok(DATA_SIZE - 4096, 4096);
  read_ok(DATA_SIZE - 3 * 4096, 3 * 4096);
  read_ok(0, DATA_SIZE);
  uint64_t x = 42;
  for (int i = 0; i < 300; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t n = 1 + (x >> 33) % 64;
    uint64_t p = (x >> 13) % pages;
    if (p + n > pages) n = pages - p;
    read_ok(p * 4096, n * 4096);
  }
  /* 304 reads + the probe, every byte counted once. */
  ck_assert_uint_eq(fakehost_counter("requests"), 305);
  ck_assert_uint_eq(fakehost_counter("errors"), 0);
}
END_TEST

struct par {
  int id;
  int failures;
};

static void *par_reader(void *opaque) {
  struct par *p = opaque;
  uint8_t *buf = page_alloc(65536);
  uint64_t x = (uint64_t)p->id + 7;
  for (int i = 0; i < 100; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t off = ((x >> 20) % (DATA_SIZE / 4096 - 16)) * 4096;
    if (h.p->read(h.h, buf, 65536, off, UFK_READ_FAULT) < 0 ||
        mismatch(buf, off, 65536, DATA_SEED) >= 0)
      p->failures++;
  }
  free(buf);
  return NULL;
}

/* Connections are pooled and kept alive: 800 reads from 8 threads go over
 * at most `connections` TCP connections. */
START_TEST(parallel_reads_reuse_connections) {
  open_http(nginx_data("par"), "connections=4");
  struct ufk_caps caps = {0};
  h.p->caps(h.h, &caps);
  ck_assert_uint_eq(caps.max_concurrency, 4);
  ck_assert_uint_eq(caps.flags & UFK_PLUGIN_FAST, 0);
  pthread_t t[8];
  struct par p[8];
  for (int i = 0; i < 8; i++) {
    p[i] = (struct par){.id = i};
    pthread_create(&t[i], NULL, par_reader, &p[i]);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(p[i].failures, 0);
  }
  inst_close(&h);
  ck_assert_int_eq(log_count("GET /data.bin?t=par ", 801), 801);
  /* The log line starts with nginx's connection serial number. */
  FILE *f = fopen(env("NGINX_LOG"), "r");
  char line[1024];
  long conns[64];
  int nconns = 0;
  int requests = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strstr(line, "GET /data.bin?t=par ")) continue;
    requests++;
    long c = strtol(line, NULL, 10);
    int seen = 0;
    for (int i = 0; i < nconns; i++)
      seen |= conns[i] == c;
    if (!seen && nconns < 64) conns[nconns++] = c;
  }
  fclose(f);
  ck_assert_int_eq(requests, 801);
  ck_assert_msg(nconns <= 4, "%d connections for 4 slots", nconns);
}
END_TEST

/* Same origin, when allowed: followed. */
START_TEST(redirects_are_followed_when_allowed) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "moved.bin"));
  open_http(kv, "redirects=2");
  ck_assert_int_eq(h.p->get_size(h.h), (int64_t)DATA_SIZE);
  read_ok(4096, 8192);
  read_ok(DATA_SIZE - 4096, 4096);
}
END_TEST

/* By default none is followed, and the start says why. */
START_TEST(redirects_are_refused_by_default) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "moved.bin"));
  const char *set[] = {kv, NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_msg(strstr(fakehost_last_error(), "redirects are not followed"),
                "%s", fakehost_last_error());
}
END_TEST

/* Requests the other server (another port: another origin) got so far. */
static int other_requests(void) {
  const char *t = server_text("OTHER_URL", "_headers");
  int n = 0;
  for (const char *p = t; (p = strstr(p, "[[")); p += 2)
    n++;
  return n;
}

/* read at 4096 redirected by the first server to the second: with
 * settings a and b, refused (e, needle) or followed (e == 0).  The second
 * server must never see a secret. */
static void redirect_case(const char *a, const char *b, int e,
                          const char *needle) {
  char q[600], kv[600];
  server_text("OTHER_URL", "_reset");
  snprintf(kv, sizeof kv, "url=%s", url("FAULTY_URL", "data.bin"));
  const char *set[] = {kv, a, b, NULL};
  ck_assert_msg(inst_open(&h, "http", NULL, set) == 0, "%s",
                fakehost_last_error());
  snprintf(q, sizeof q, "mode=redirect&count=1&to=%s", env("OTHER_URL"));
  faulty(q);
  if (e)
    read_fails(4096, 4096, e, needle);
  else
    read_ok(4096, 4096);
  const char *seen = server_text("OTHER_URL", "_headers");
  ck_assert_msg(!strstr(seen, "s3cr3t") && !strstr(seen, "tok3n") &&
                    !strcasestr(seen, "authorization") &&
                    !strcasestr(seen, "x-amz-security-token"),
                "a secret reached the other origin: %s", seen);
  ck_assert_int_eq(other_requests(), e ? 0 : 1);
  inst_close(&h);
}

START_TEST(redirects_keep_secrets_on_the_origin) {
  redirect_case(NULL, NULL, EINVAL, "redirects are not followed");
  redirect_case("redirects=3", "headers=X-Secret: s3cr3t", EACCES,
                "another origin");
  setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key", 1);
  setenv("AWS_SESSION_TOKEN", "tok3n", 1);
  redirect_case("redirects=3", "aws_sigv4=aws:amz:eu-west-1:s3", EACCES,
                "another origin");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_SESSION_TOKEN");
  /* Without credentials another origin is fine. */
  redirect_case("redirects=3", NULL, 0, NULL);
}
END_TEST

START_TEST(server_ignoring_ranges_is_refused) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "norange/data.bin"));
  const char *set[] = {kv, NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_int_eq(fakehost_last_errno(), EINVAL);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "HTTP status 200"));
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "range requests"));
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "/norange/data.bin"));
}
END_TEST

START_TEST(missing_object_is_permanent) {
  char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "nope.bin"));
  const char *set[] = {kv, NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_int_eq(fakehost_last_errno(), ENOENT);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "404"));
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "nope.bin"));
}
END_TEST

START_TEST(nothing_listening_is_refused) {
  const char *set[] = {"url=http://127.0.0.1:1/x", NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_int_eq(fakehost_last_errno(), ECONNREFUSED);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "127.0.0.1:1/x"));
}
END_TEST

START_TEST(start_survives_brief_errors) {
  faulty("mode=503&count=2");
  open_http(faulty_data_kv(), NULL);
  read_ok(0, 4096);
  inst_close(&h);
  faulty("mode=500&count=3");
  const char *set[] = {faulty_data_kv(), NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_int_eq(fakehost_last_errno(), EIO);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "HTTP status 500"));
}
END_TEST

START_TEST(status_errors_are_classified) {
  open_http(faulty_data_kv(), NULL);
  static const struct {
    const char *mode;
    int e;
  } cases[] = {{"404", ENOENT}, {"403", EACCES}, {"401", EACCES},
               {"400", EINVAL}, {"416", ERANGE}, {"429", EAGAIN},
               {"500", EIO},    {"502", EIO},    {"503", EAGAIN}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char q[64];
    snprintf(q, sizeof q, "mode=%s&count=1", cases[i].mode);
    faulty(q);
    read_fails(8192, 4096, cases[i].e, cases[i].mode);
    ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "bytes 8192-12287"));
    read_ok(8192, 4096); /* the next request is fine again */
  }
  ck_assert_uint_eq(fakehost_counter("errors"), 9);
}
END_TEST

START_TEST(bad_bodies_are_errors) {
  open_http(faulty_data_kv(), "timeout=500ms");
  faulty("mode=truncate&count=1");
  read_fails(65536, 65536, EIO, "65536");
  read_ok(65536, 65536);
  faulty("mode=long&count=1");
  read_fails(0, 8192, EIO, "longer");
  read_ok(0, 8192);
  faulty("mode=badrange&count=1");
  read_fails(4096, 4096, EIO, "8192-12287");
  faulty("mode=norange&count=1");
  read_fails(4096, 4096, EINVAL, "range ignored");
  faulty("mode=gzip&count=1");
  read_fails(4096, 4096, EINVAL, "Content-Encoding");
  faulty("mode=delay&count=1&seconds=1.5");
  read_fails(4096, 4096, ETIMEDOUT, "bytes 4096-8191");
  faulty("mode=drop&count=1");
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(h.p->read(h.h, buf, 4096, 4096, 0), -1);
  ck_assert_msg(errno == ECONNRESET || errno == EIO, "errno %d", errno);
  free(buf);
  read_ok(4096, 4096);
}
END_TEST

START_TEST(reads_outside_or_nowait_fail) {
  open_http(nginx_data("outside"), NULL);
  read_fails(DATA_SIZE - 4096, 8192, EINVAL, "outside");
  uint8_t *buf = page_alloc(4096);
  fakehost_clear_error();
  ck_assert_int_eq(h.p->read(h.h, buf, 4096, 0, UFK_READ_NOWAIT), -1);
  ck_assert_int_eq(fakehost_last_errno(), EWOULDBLOCK);
  free(buf);
  ck_assert_uint_eq(fakehost_counter("requests"), 1);
}
END_TEST

START_TEST(extra_headers_are_sent) {
  open_http(nginx_data("hdr"), "headers=X-Test: marker-123");
  read_ok(0, 4096);
  ck_assert_int_eq(log_count("\"marker-123\"", 2), 2);
}
END_TEST

static void bad_setting(const char *a, const char *b, const char *needle) {
  const char *set[] = {a, b, NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_msg(strstr(fakehost_last_error(), needle), "'%s' lacks '%s'",
                fakehost_last_error(), needle);
  inst_close(&h);
}

START_TEST(bad_settings_are_refused) {
  bad_setting("url=ftp://127.0.0.1/x", NULL, "http");
  bad_setting("url=not a url", NULL, "url");
  bad_setting(nginx_data("bad"), "connections=0", "connections");
  bad_setting(nginx_data("bad"), "connections=100000", "connections");
  bad_setting(nginx_data("bad"), "headers=NoColon", "headers");
  bad_setting(nginx_data("bad"), "aws_access_key_id=x", "aws_sigv4");
  bad_setting(nginx_data("bad"), "timeout=0s", "timeout");
  bad_setting(nginx_data("bad"), "prefetch_pause=11s", "prefetch_pause");
  bad_setting(nginx_data("bad"), "prefetch_window=100", "prefetch_window");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  bad_setting(nginx_data("bad"), "aws_sigv4=aws:amz:us-east-1:s3",
              "aws_access_key_id");
}
END_TEST

START_TEST(credentials_stay_out_of_messages) {
  char kv[700];
  snprintf(kv, sizeof kv, "url=http://user:hunter2@127.0.0.1:1/x?sig=s3cr3t");
  const char *set[] = {kv, NULL};
  ck_assert_int_eq(inst_open(&h, "http", NULL, set), -1);
  ck_assert_ptr_null(strstr(fakehost_last_error(), "hunter2"));
  ck_assert_ptr_null(strstr(fakehost_last_error(), "s3cr3t"));
}
END_TEST

/* NAME under the servers' root with seed's bytes, modified `age` seconds
 * ago (nginx's ETag is made of the mtime in seconds and the size), put in
 * place by rename as a store would. */
static void put_object(const char *name, uint64_t seed, time_t age) {
  char path[1024], tmp[1100];
  snprintf(path, sizeof path, "%s/%s", env("HTTP_TEST_ROOT"), name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  make_file(tmp, 1 << 20, seed);
  time_t t = time(NULL) - age;
  struct utimbuf u = {t, t};
  ck_assert_int_eq(utime(tmp, &u), 0);
  ck_assert_int_eq(rename(tmp, path), 0);
}

static void read_seed(uint64_t off, uint64_t len, uint64_t seed) {
  uint8_t *buf = page_alloc(len);
  ck_assert_msg(h.p->read(h.h, buf, len, off, UFK_READ_FAULT) == 0, "%s",
                fakehost_last_error());
  ck_assert_msg(mismatch(buf, off, len, seed) < 0, "read at %llu differs",
                (unsigned long long)off);
  free(buf);
}

/* nginx sends a strong ETag and answers If-Match: the object replaced
 * after start is refused (412), for good, and never mixed in. */
START_TEST(replaced_object_is_a_source_error) {
  put_object("replaced.bin", 7, 100);
  char kv[600], id[1024];
  snprintf(kv, sizeof kv, "url=%s", url("NGINX_URL", "replaced.bin"));
  open_http(kv, NULL);
  ck_assert_int_eq(h.p->identity(h.h, id, sizeof id), 0);
  char etag[256];
  ck_assert_msg(sscanf(id, "%*[^\"]\"%255[^\"]\"", etag) == 1,
                "identity '%s' names no ETag", id);
  read_seed(4096, 8192, 7);
  /* The request carried it: nginx logged it as If-Match. */
  ck_assert_int_ge(log_count(etag, 1), 1);
  put_object("replaced.bin", 8, 50);
  read_fails(4096, 4096, ESTALE, "changed since this source started");
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "412"));
  put_object("replaced.bin", 7, 100); /* the old bytes, another ETag */
  read_fails(0, 4096, ESTALE, "changed since this source started");
  ck_assert_uint_eq(fakehost_counter("errors"), 1);
}
END_TEST

/* A server that ignores If-Match but names another version in its answer. */
START_TEST(another_version_is_a_source_error) {
  open_http(faulty_data_kv(), NULL);
  read_ok(0, 4096);
  faulty("mode=etag&count=1");
  read_fails(4096, 4096, ESTALE, "now \"");
  long before = faulty_requests();
  read_fails(8192, 4096, ESTALE, "changed since this source started");
  ck_assert_int_eq(faulty_requests(), before);
}
END_TEST

/* A Content-Range total other than the size seen at start, a "*" total,
 * and a range wrong only in its last byte: each refused. */
START_TEST(wrong_totals_and_ranges_are_refused) {
  open_http(faulty_data_kv(), NULL);
  faulty("mode=startotal&count=1");
  read_fails(4096, 4096, EINVAL, "gives no object size");
  faulty("mode=lastbyte&count=1");
  read_fails(4096, 4096, EIO, "bytes 4096-8190 instead");
  read_ok(4096, 4096);
  faulty("mode=total&count=1");
  read_fails(4096, 4096, ESTALE, "size changed");
  read_fails(0, 4096, ESTALE, "changed since this source started");
}
END_TEST

START_TEST(oversized_headers_are_named) {
  open_http(faulty_data_kv(), NULL);
  faulty("mode=bigheaders&count=1");
  read_fails(4096, 4096, EINVAL, "response header is larger than");
  ck_assert_ptr_null(strstr(fakehost_last_error(), "Content-Range"));
  read_ok(4096, 4096);
}
END_TEST

int main(void) {
  Suite *s = suite_create("http");
  TCase *tc = tcase_create("http");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, faulty_reset, teardown);
  tcase_add_test(tc, reads_are_byte_exact);
  tcase_add_test(tc, parallel_reads_reuse_connections);
  tcase_add_test(tc, redirects_are_followed_when_allowed);
  tcase_add_test(tc, redirects_are_refused_by_default);
  tcase_add_test(tc, redirects_keep_secrets_on_the_origin);
  tcase_add_test(tc, server_ignoring_ranges_is_refused);
  tcase_add_test(tc, missing_object_is_permanent);
  tcase_add_test(tc, nothing_listening_is_refused);
  tcase_add_test(tc, start_survives_brief_errors);
  tcase_add_test(tc, status_errors_are_classified);
  tcase_add_test(tc, bad_bodies_are_errors);
  tcase_add_test(tc, reads_outside_or_nowait_fail);
  tcase_add_test(tc, extra_headers_are_sent);
  tcase_add_test(tc, bad_settings_are_refused);
  tcase_add_test(tc, credentials_stay_out_of_messages);
  tcase_add_test(tc, replaced_object_is_a_source_error);
  tcase_add_test(tc, another_version_is_a_source_error);
  tcase_add_test(tc, wrong_totals_and_ranges_are_refused);
  tcase_add_test(tc, oversized_headers_are_named);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

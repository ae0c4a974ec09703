/* The http source with SigV4 against a real S3 server: Ceph's radosgw
 * (tests/lib/ceph.sh), which checks every signature, answers ranges, sends
 * an ETag (the MD5 of the object) and honours If-Match.  run-unit.sh
 * uploads the object made by `test-http-s3 --make FILE` as mem.img and
 * passes S3_URL (endpoint/bucket), S3_REGION and the keys.  Ceph has no
 * session tokens without its STS service, so faulty_server.py --sigv4
 * checks signatures made with one (it serves the same bytes as
 * signed.img). */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fakehost.h"
#include "util.h"

static struct inst h, cache;

static void teardown(void) {
  inst_close(&cache);
  inst_close(&h);
}

static const char *object(const char *key) {
  static char kv[600];
  snprintf(kv, sizeof kv, "url=%s/%s", env("S3_URL"), key);
  return kv;
}

static const char *sigv4(void) {
  static char kv[200];
  snprintf(kv, sizeof kv, "aws_sigv4=aws:amz:%s:s3", env("S3_REGION"));
  return kv;
}

static const char *setting(const char *name, const char *env_name) {
  static char bufs[4][300];
  static int n;
  char *b = bufs[n++ % 4];
  snprintf(b, sizeof bufs[0], "%s=%s", name, env(env_name));
  return b;
}

/* Opens the http source on KEY with the test user's keys. */
static int open_key(const char *key) {
  return inst_open(
      &h, "http", NULL,
      (const char *[]){
          object(key), sigv4(), setting("aws_access_key_id", "S3_ACCESS_KEY"),
          setting("aws_secret_access_key", "S3_SECRET_KEY"), NULL});
}

struct upload {
  const uint8_t *data;
  size_t len, off;
  char etag[128];
};

static size_t upload_read(char *buf, size_t size, size_t n, void *opaque) {
  struct upload *u = opaque;
  size_t k = size * n < u->len - u->off ? size * n : u->len - u->off;
  memcpy(buf, u->data + u->off, k);
  u->off += k;
  return k;
}

static size_t upload_header(char *line, size_t size, size_t n, void *opaque) {
  struct upload *u = opaque;
  size_t len = size * n;
  if (len > 6 && !strncasecmp(line, "etag:", 5))
    sscanf(line + 5, " %127[^\r\n]", u->etag);
  return len;
}

/* PUTs 1 MiB of SEED's bytes as KEY, signed; returns the ETag Ceph gave
 * it (in a static buffer). */
static const char *s3_put(const char *key, uint64_t seed) {
  static struct upload u;
  uint8_t *data = malloc(1 << 20);
  ck_assert_ptr_nonnull(data);
  for (uint64_t o = 0; o < 1 << 20; o++)
    data[o] = pattern(seed, o);
  u = (struct upload){.data = data, .len = 1 << 20};
  char user[300], where[600], scope[200];
  snprintf(user, sizeof user, "%s:%s", env("S3_ACCESS_KEY"),
           env("S3_SECRET_KEY"));
  snprintf(where, sizeof where, "%s/%s", env("S3_URL"), key);
  snprintf(scope, sizeof scope, "aws:amz:%s:s3", env("S3_REGION"));
  CURL *c = curl_easy_init();
  struct curl_slist *hd =
      curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  curl_easy_setopt(c, CURLOPT_URL, where);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.len);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
  curl_easy_setopt(c, CURLOPT_READDATA, &u);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, upload_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &u);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, scope);
  curl_easy_setopt(c, CURLOPT_USERPWD, user);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hd);
  curl_easy_cleanup(c);
  free(data);
  ck_assert_msg(rc == CURLE_OK && status == 200, "PUT %s: %s, HTTP %ld", key,
                curl_easy_strerror(rc), status);
  ck_assert_msg(u.etag[0] == '"', "PUT %s: no ETag", key);
  return u.etag;
}

static void read_ok(struct inst *i, uint64_t off, uint64_t len) {
  uint8_t *buf = page_alloc(len);
  ck_assert_msg(i->p->read(i->h, buf, len, off, UFK_READ_FAULT) == 0,
                "read %llu+%llu: %s", (unsigned long long)off,
                (unsigned long long)len, fakehost_last_error());
  ck_assert_int_lt(mismatch(buf, off, len, DATA_SEED), 0);
  free(buf);
}

static void random_reads(struct inst *i, int n, uint64_t seed) {
  uint64_t x = seed;
  for (int k = 0; k < n; k++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t pages = 1 + (x >> 40) % 32;
    uint64_t p = (x >> 12) % (DATA_SIZE / 4096 - pages);
    read_ok(i, p * 4096, pages * 4096);
  }
}

/* Ranged GETs, each signed: the size from the probe, both ends and random
 * runs of pages, every byte checked. */
START_TEST(signed_reads_are_byte_exact) {
  ck_assert_msg(open_key("mem.img") == 0, "%s", fakehost_last_error());
  ck_assert_int_eq(h.p->get_size(h.h), (int64_t)DATA_SIZE);
  read_ok(&h, 0, 4096);
  read_ok(&h, DATA_SIZE - 8192, 8192);
  random_reads(&h, 100, 5);
}
END_TEST

static void *par(void *opaque) {
  random_reads(&h, 25, (uint64_t)(intptr_t)opaque);
  return NULL;
}

START_TEST(credentials_from_the_environment) {
  setenv("AWS_ACCESS_KEY_ID", env("S3_ACCESS_KEY"), 1);
  setenv("AWS_SECRET_ACCESS_KEY", env("S3_SECRET_KEY"), 1);
  ck_assert_msg(inst_open(&h, "http", NULL,
                          (const char *[]){object("mem.img"), sigv4(),
                                           "connections=4", NULL}) == 0,
                "%s", fakehost_last_error());
  pthread_t t[4];
  for (intptr_t i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, par, (void *)(i + 1));
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
}
END_TEST

static void read_seed(uint64_t off, uint64_t len, uint64_t seed) {
  uint8_t *buf = page_alloc(len);
  ck_assert_msg(h.p->read(h.h, buf, len, off, UFK_READ_FAULT) == 0, "%s",
                fakehost_last_error());
  ck_assert_msg(mismatch(buf, off, len, seed) < 0, "read at %llu differs",
                (unsigned long long)off);
  free(buf);
}

static void read_fails(uint64_t off, int err, const char *text) {
  uint8_t *buf = page_alloc(4096);
  ck_assert_int_eq(h.p->read(h.h, buf, 4096, off, UFK_READ_FAULT), -1);
  ck_assert_int_eq(fakehost_last_errno(), err);
  ck_assert_msg(strstr(fakehost_last_error(), text), "'%s' does not say '%s'",
                fakehost_last_error(), text);
  free(buf);
}

/* The source pins the ETag Ceph gave the object (its MD5) and names it in
 * its identity. */
START_TEST(the_objects_etag_is_pinned) {
  const char *etag = s3_put("etag.img", 5);
  char want[160], id[1024];
  snprintf(want, sizeof want, "ETag %s", etag);
  ck_assert_msg(open_key("etag.img") == 0, "%s", fakehost_last_error());
  ck_assert_int_eq(h.p->identity(h.h, id, sizeof id), 0);
  ck_assert_msg(strstr(id, want), "identity '%s' does not name %s", id, want);
  read_seed(0, 1 << 20, 5);
}
END_TEST

/* Replaced by another PUT, the object gets another ETag: Ceph answers the
 * next ranged GET's If-Match with 412, the source fails it and every
 * later read, even once the old bytes (and so the old MD5 ETag) are back. */
START_TEST(a_replaced_object_is_412) {
  s3_put("replaced.img", 7);
  ck_assert_msg(open_key("replaced.img") == 0, "%s", fakehost_last_error());
  read_seed(4096, 8192, 7);
  s3_put("replaced.img", 8);
  read_fails(4096, ESTALE, "changed since this source started");
  ck_assert_msg(strstr(fakehost_last_error(), "412"), "%s",
                fakehost_last_error());
  s3_put("replaced.img", 7);
  read_fails(0, ESTALE, "changed since this source started");
  ck_assert_uint_eq(fakehost_counter("errors"), 1);
}
END_TEST

static void refused(const char *key_id, const char *secret, const char *code) {
  char k[128], s[128];
  snprintf(k, sizeof k, "aws_access_key_id=%s", key_id);
  snprintf(s, sizeof s, "aws_secret_access_key=%s", secret);
  ck_assert_int_eq(
      inst_open(&h, "http", NULL,
                (const char *[]){object("mem.img"), sigv4(), k, s, NULL}),
      -1);
  ck_assert_int_eq(fakehost_last_errno(), EACCES);
  ck_assert_msg(strstr(fakehost_last_error(), "403") &&
                    strstr(fakehost_last_error(), code),
                "%s", fakehost_last_error());
  ck_assert_ptr_null(strstr(fakehost_last_error(), secret));
}

START_TEST(unknown_key_id_is_refused) {
  refused("NOBODY", env("S3_SECRET_KEY"), "InvalidAccessKeyId");
}
END_TEST

START_TEST(wrong_secret_is_refused) {
  refused(env("S3_ACCESS_KEY"), "wrong-secret-0123456789",
          "SignatureDoesNotMatch");
}
END_TEST

static int open_signed(const char *secret, const char *token,
                       const char *region) {
  char u[600], s[128], t[128], r[128];
  snprintf(u, sizeof u, "url=%s/signed.img", env("SIGV4_URL"));
  snprintf(s, sizeof s, "aws_secret_access_key=%s", secret);
  snprintf(t, sizeof t, "aws_session_token=%s", token);
  snprintf(r, sizeof r, "aws_sigv4=aws:amz:%s:s3", region);
  unsetenv("AWS_SESSION_TOKEN");
  return inst_open(&h, "http", NULL,
                   (const char *[]){u, r, "aws_access_key_id=AKIDTEST", s,
                                    *token ? t : NULL, NULL});
}

START_TEST(signature_is_verified_byte_exact) {
  ck_assert_msg(open_signed("s3cr3t-key", "tok3n", "eu-west-1") == 0, "%s",
                fakehost_last_error());
  random_reads(&h, 50, 3);
}
END_TEST

static void signed_refused(const char *secret, const char *token,
                           const char *region, const char *code) {
  ck_assert_int_eq(open_signed(secret, token, region), -1);
  ck_assert_int_eq(fakehost_last_errno(), EACCES);
  ck_assert_msg(strstr(fakehost_last_error(), code), "%s",
                fakehost_last_error());
  inst_close(&h);
}

START_TEST(bad_signatures_are_refused) {
  signed_refused("wrong-key", "tok3n", "eu-west-1", "SignatureDoesNotMatch");
  signed_refused("s3cr3t-key", "", "eu-west-1", "InvalidToken");
  signed_refused("s3cr3t-key", "other", "eu-west-1", "InvalidToken");
  signed_refused("s3cr3t-key", "tok3n", "us-east-1",
                 "AuthorizationHeaderMalformed");
}
END_TEST

START_TEST(missing_key_is_permanent) {
  ck_assert_int_eq(open_key("nope.img"), -1);
  ck_assert_int_eq(fakehost_last_errno(), ENOENT);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "NoSuchKey"));
}
END_TEST

START_TEST(through_a_cache) {
  ck_assert_msg(open_key("mem.img") == 0, "%s", fakehost_last_error());
  ck_assert_int_eq(inst_open(&cache, "cache", &h.next,
                             (const char *[]){"chunk=1M", "size=4M", NULL}),
                   0);
  random_reads(&cache, 200, 11);
  ck_assert_uint_eq(fakehost_counter("requests"),
                    fakehost_counter("misses") + 1);
}
END_TEST

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--make")) {
    make_file(argv[2], DATA_SIZE, DATA_SEED);
    return 0;
  }
  Suite *s = suite_create("s3");
  TCase *tc = tcase_create("s3");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, signed_reads_are_byte_exact);
  tcase_add_test(tc, credentials_from_the_environment);
  tcase_add_test(tc, the_objects_etag_is_pinned);
  tcase_add_test(tc, a_replaced_object_is_412);
  tcase_add_test(tc, unknown_key_id_is_refused);
  tcase_add_test(tc, wrong_secret_is_refused);
  tcase_add_test(tc, signature_is_verified_byte_exact);
  tcase_add_test(tc, bad_signatures_are_refused);
  tcase_add_test(tc, missing_key_is_permanent);
  tcase_add_test(tc, through_a_cache);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

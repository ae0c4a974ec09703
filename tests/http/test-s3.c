/* The http source with SigV4.  s3rver (key S3RVER / S3RVER) checks the key
 * id and the form of the request (it wants x-amz-content-sha256) but not the
 * signature; faulty_server.py --sigv4 checks the signature itself, with a
 * session token.  run-unit.sh uploads the object made by
 * `test-http-s3 --make FILE` as memory/mem.img and serves it as signed.img. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"
#include "util.h"

#define SIGV4 "aws_sigv4=aws:amz:us-east-1:s3"

static struct inst h, cache;

static void teardown(void) {
  inst_close(&cache);
  inst_close(&h);
}

static const char *object(const char *key) {
  static char kv[600];
  snprintf(kv, sizeof kv, "url=%s/memory/%s", env("S3_URL"), key);
  return kv;
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

START_TEST(signed_reads_are_byte_exact) {
  ck_assert_msg(
      inst_open(&h, "http", NULL,
                (const char *[]){object("mem.img"), SIGV4,
                                 "aws_access_key_id=S3RVER",
                                 "aws_secret_access_key=S3RVER", NULL}) == 0,
      "%s", fakehost_last_error());
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
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  ck_assert_msg(inst_open(&h, "http", NULL,
                          (const char *[]){object("mem.img"), SIGV4,
                                           "connections=4", NULL}) == 0,
                "%s", fakehost_last_error());
  pthread_t t[4];
  for (intptr_t i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, par, (void *)(i + 1));
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
}
END_TEST

static void refused(const char *key_id, const char *secret, const char *code) {
  char k[128], s[128];
  snprintf(k, sizeof k, "aws_access_key_id=%s", key_id);
  snprintf(s, sizeof s, "aws_secret_access_key=%s", secret);
  ck_assert_int_eq(
      inst_open(&h, "http", NULL,
                (const char *[]){object("mem.img"), SIGV4, k, s, NULL}),
      -1);
  ck_assert_int_eq(fakehost_last_errno(), EACCES);
  ck_assert_msg(strstr(fakehost_last_error(), "403") &&
                    strstr(fakehost_last_error(), code),
                "%s", fakehost_last_error());
  ck_assert_ptr_null(strstr(fakehost_last_error(), secret));
}

START_TEST(unknown_key_id_is_refused) {
  refused("NOBODY", "S3RVER", "InvalidAccessKeyId");
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
  ck_assert_int_eq(
      inst_open(&h, "http", NULL,
                (const char *[]){object("nope.img"), SIGV4,
                                 "aws_access_key_id=S3RVER",
                                 "aws_secret_access_key=S3RVER", NULL}),
      -1);
  ck_assert_int_eq(fakehost_last_errno(), ENOENT);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "NoSuchKey"));
}
END_TEST

START_TEST(through_a_cache) {
  ck_assert_int_eq(
      inst_open(&h, "http", NULL,
                (const char *[]){object("mem.img"), SIGV4,
                                 "aws_access_key_id=S3RVER",
                                 "aws_secret_access_key=S3RVER", NULL}),
      0);
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
  tcase_add_test(tc, unknown_key_id_is_refused);
  tcase_add_test(tc, signature_is_verified_byte_exact);
  tcase_add_test(tc, bad_signatures_are_refused);
  tcase_add_test(tc, missing_key_is_permanent);
  tcase_add_test(tc, through_a_cache);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

/* Unit tests of the control protocol's requests and responses, and of the
 * tables ctl prints from them. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctltest.h"

/* ---- requests ---- */

START_TEST(test_parse_requests) {
  struct control_request r;
  char err[256];
  static const struct {
    const char *in;
    int cmd;
  } good[] = {
      {"{\"cmd\":\"list\"}", CONTROL_LIST},
      {" {\"cmd\" : \"stats\"}\r", CONTROL_STATS},
      {"{\"cmd\":\"metrics\"}", CONTROL_METRICS},
      {"{\"cmd\":\"reload\"}", CONTROL_RELOAD},
      {"{\"cmd\":\"drain\",\"listener\":\"a\"}", CONTROL_DRAIN},
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ck_assert_msg(control_parse_request(good[i].in, strlen(good[i].in), &r, err,
                                        sizeof err) == 0,
                  "%s: %s", good[i].in, err);
    ck_assert_int_eq(r.cmd, good[i].cmd);
  }
  ck_assert_str_eq(r.listener, "a");
  static const struct {
    const char *in, *msg;
  } bad[] = {
      {"", "empty request"},
      {"  ", "empty request"},
      {"{\"cmd\":", "not valid JSON"},
      {"{cmd:list}", "not valid JSON"},
      {"[\"list\"]", "must be a JSON object"},
      {"\"list\"", "must be a JSON object"},
      {"{}", "needs \"cmd\""},
      {"{\"cmd\":3}", "needs \"cmd\""},
      {"{\"cmd\":\"lsit\"}", "unknown cmd \"lsit\""},
      {"{\"cmd\":\"list\",\"x\":1}", "unknown key \"x\" in a list request"},
      {"{\"cmd\":\"list\",\"listener\":\"a\"}", "unknown key \"listener\""},
      {"{\"cmd\":\"drain\"}", "drain needs \"listener\""},
      {"{\"cmd\":\"drain\",\"listener\":\"\"}", "drain needs \"listener\""},
      {"{\"cmd\":\"drain\",\"listener\":7}", "drain needs \"listener\""},
      {"{\"cmd\":\"list\"} {\"cmd\":\"list\"}", "bytes after its JSON"},
      {"{\"cmd\":\"list\"}x", "bytes after its JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    ck_assert_int_eq(control_parse_request(bad[i].in, strlen(bad[i].in), &r,
                                           err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, bad[i].msg), "'%s': %s", bad[i].in, err);
  }
  /* A long listener name, and a request over the size limit. */
  char big[CONTROL_MAX_REQUEST + 64];
  int n = snprintf(big, sizeof big, "{\"cmd\":\"drain\",\"listener\":\"");
  memset(big + n, 'x', 100);
  snprintf(big + n + 100, sizeof big - (size_t)n - 100, "\"}");
  ck_assert_int_eq(control_parse_request(big, strlen(big), &r, err, sizeof err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err, "listener name longer than 63"));
  memset(big, ' ', sizeof big);
  memcpy(big, "{\"cmd\":\"list\"}", 14);
  ck_assert_int_eq(control_parse_request(big, sizeof big, &r, err, sizeof err),
                   -1);
  ck_assert_str_eq(err, "request longer than 65536 bytes");
  /* The limit itself is fine. */
  ck_assert_int_eq(
      control_parse_request(big, CONTROL_MAX_REQUEST, &r, err, sizeof err), 0);
}
END_TEST

START_TEST(test_respond_errors) {
  cJSON *j = respond("{\"cmd\":\"nope\"}", 1, 1, NULL);
  ck_assert_ptr_nonnull(strstr(error_of(j), "unknown cmd \"nope\""));
  /* "error" for people, "code" for programs (docs/control-protocol.md) */
  ck_assert_int_eq(cJSON_GetArraySize(j), 2);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, "bad_request");
  cJSON_Delete(j);
  j = respond("not json", 1, 1, NULL);
  ck_assert_ptr_nonnull(strstr(error_of(j), "not valid JSON"));
  cJSON_Delete(j);
}
END_TEST

static const cJSON *item(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  ck_assert_msg(v != NULL, "no key %s", k);
  return v;
}

static double numof(const cJSON *o, const char *k) {
  const cJSON *v = item(o, k);
  ck_assert(cJSON_IsNumber(v));
  return v->valuedouble;
}

START_TEST(test_respond_list) {
  standard_view();
  /* Listeners come out sorted by name, whatever the view's order. */
  struct stats_listener tmp = L[0];
  L[0] = L[1];
  L[1] = tmp;
  L[1].accepting = 0;
  add_session(7, "b", 99)->counters.faults = 1;
  uint64_t now_unix = 1700000000ull * 1000000000ull;
  S[0]->started_unix_ns = now_unix - 2000000000ull;
  S[1]->started_unix_ns = now_unix;
  struct stats_rates *r = stats_rates_new();
  cJSON *j = respond("{\"cmd\":\"list\"}", 10000000000ull, now_unix, r);
  ck_assert_ptr_null(error_of(j));
  const cJSON *ls = item(j, "listeners");
  ck_assert_int_eq(cJSON_GetArraySize(ls), 2);
  const cJSON *a = cJSON_GetArrayItem(ls, 0);
  ck_assert_str_eq(item(a, "name")->valuestring, "a");
  ck_assert_str_eq(item(a, "socket")->valuestring, "/run/a.sock");
  ck_assert_str_eq(item(a, "source")->valuestring, "http+cache");
  ck_assert(cJSON_IsFalse(item(a, "accepting")));
  ck_assert_double_eq(numof(a, "sessions_live"), 1);
  ck_assert_double_eq(numof(a, "sessions_total"), 5);
  ck_assert_double_eq(numof(a, "faults"), 120);
  ck_assert_double_eq(numof(a, "pages_copied"), 108);
  ck_assert_double_eq(numof(a, "zero_pages"), 12);
  ck_assert_double_eq(numof(a, "bytes_copied"), 108 * 4096);
  ck_assert(cJSON_IsTrue(item(cJSON_GetArrayItem(ls, 1), "accepting")));
  /* Sessions sorted by id. */
  const cJSON *ss = item(j, "sessions");
  ck_assert_int_eq(cJSON_GetArraySize(ss), 2);
  const cJSON *s7 = cJSON_GetArrayItem(ss, 0), *s = cJSON_GetArrayItem(ss, 1);
  ck_assert_double_eq(numof(s7, "id"), 7);
  ck_assert_double_eq(numof(s7, "faults_per_second"), 0);
  ck_assert_double_eq(numof(s, "id"), 42);
  ck_assert_str_eq(item(s, "listener")->valuestring, "a");
  ck_assert_double_eq(numof(s, "pid"), 1234);
  ck_assert_double_eq(numof(s, "uid"), 0);
  ck_assert_double_eq(numof(s, "regions"), 2);
  ck_assert_double_eq(numof(s, "memory_bytes"), 4 << 20);
  ck_assert_double_eq(numof(s, "page_size"), 4096);
  ck_assert_str_eq(item(s, "started")->valuestring, "2023-11-14T22:13:18Z");
  ck_assert_double_eq(numof(s, "pages_copied"), 18);
  ck_assert_double_eq(numof(s, "zero_pages"), 2);
  ck_assert_double_eq(numof(s, "bytes_copied"), 18 * 4096);
  ck_assert_double_eq(numof(s, "faults"), 20);
  /* First sample: 20 faults over the 2 s since it started. */
  ck_assert_double_eq(numof(s, "faults_per_second"), 10);
  cJSON_Delete(j);

  /* Then from the previous sample: 300 more faults in 0.5 s. */
  S[0]->counters.faults = 320;
  j = respond("{\"cmd\":\"list\"}", 10500000000ull, now_unix + 500000000, r);
  s = cJSON_GetArrayItem(item(j, "sessions"), 1);
  ck_assert_double_eq(numof(s, "faults_per_second"), 600);
  cJSON_Delete(j);
  /* A sample 10 ms later is too close: the last rate is kept. */
  S[0]->counters.faults = 330;
  j = respond("{\"cmd\":\"list\"}", 10510000000ull, now_unix + 510000000, r);
  s = cJSON_GetArrayItem(item(j, "sessions"), 1);
  ck_assert_double_eq(numof(s, "faults_per_second"), 600);
  cJSON_Delete(j);
  /* 2.01 s after the sample kept (320 faults): 10 more.  And a gone
   * session is forgotten: when its id comes back it starts over from its
   * start. */
  NS--;
  free(S[NS]); /* session 7 */
  j = respond("{\"cmd\":\"list\"}", 12510000000ull, now_unix + 2510000000ull,
              r);
  s = cJSON_GetArrayItem(item(j, "sessions"), 0);
  ck_assert_double_eq(numof(s, "faults_per_second"), 5);
  cJSON_Delete(j);
  j = respond("{\"cmd\":\"list\"}", 14510000000ull, now_unix + 4510000000ull,
              r);
  s = cJSON_GetArrayItem(item(j, "sessions"), 0);
  ck_assert_double_eq(numof(s, "faults_per_second"), 0);
  cJSON_Delete(j);
  add_session(7, "b", 99)->counters.faults = 30;
  S[1]->started_unix_ns = now_unix + 4510000000ull - 3000000000ull;
  j = respond("{\"cmd\":\"list\"}", 14520000000ull, now_unix + 4510000000ull,
              r);
  s = cJSON_GetArrayItem(item(j, "sessions"), 0);
  ck_assert_double_eq(numof(s, "id"), 7);
  ck_assert_double_eq(numof(s, "faults_per_second"), 10);
  cJSON_Delete(j);
  stats_rates_free(r);
}
END_TEST

START_TEST(test_respond_stats) {
  standard_view();
  cJSON *j = respond("{\"cmd\":\"stats\"}", 1, 1, NULL);
  const cJSON *a = cJSON_GetArrayItem(item(j, "listeners"), 0);
  ck_assert_str_eq(item(a, "name")->valuestring, "a");
  ck_assert_double_eq(numof(a, "refused_peers"), 2);
  ck_assert_double_eq(numof(a, "handshake_errors"), 3);
  ck_assert_double_eq(numof(a, "worker_restarts"), 1);
  const cJSON *c = item(a, "counters");
  ck_assert_double_eq(numof(c, "faults"), 120);
  ck_assert_double_eq(numof(c, "source_errors"), 8);
  ck_assert_double_eq(numof(c, "eagain"), 7);
  const cJSON *lat = item(a, "latency");
  ck_assert_double_eq(numof(lat, "count"), 4);
  ck_assert_double_eq(numof(lat, "mean_us"), 375000);
  ck_assert_double_eq(numof(lat, "p50_us"), 32);
  ck_assert(cJSON_IsNull(item(lat, "p99_us")));
  ck_assert_int_eq(cJSON_GetArraySize(item(lat, "buckets")), LAT_BUCKETS);
  const cJSON *src = item(a, "sources");
  ck_assert_int_eq(cJSON_GetArraySize(src), 2);
  const cJSON *http = cJSON_GetArrayItem(src, 0);
  ck_assert_str_eq(item(http, "instance")->valuestring, "a/http");
  ck_assert_double_eq(numof(item(http, "counters"), "bytes_fetched"), 1000);
  ck_assert_ptr_null(cJSON_GetObjectItem(http, "hit_ratio"));
  const cJSON *cache = cJSON_GetArrayItem(src, 1);
  ck_assert_str_eq(item(cache, "instance")->valuestring, "a/cache");
  ck_assert_double_eq(numof(item(cache, "counters"), "hits"), 3);
  ck_assert_double_eq(numof(item(cache, "counters"), "misses"), 1);
  ck_assert_double_eq(numof(item(cache, "counters"), "bytes_fetched"), 500);
  ck_assert_double_eq(numof(cache, "hit_ratio"), 0.75);
  cJSON_Delete(j);
  /* No lookups yet: the ratio is null. */
  ST[0]->counters[1].value = 0;
  ST[0]->counters[2].value = 0;
  j = respond("{\"cmd\":\"stats\"}", 1, 1, NULL);
  a = cJSON_GetArrayItem(item(j, "listeners"), 0);
  cache = cJSON_GetArrayItem(item(a, "sources"), 1);
  ck_assert(cJSON_IsNull(item(cache, "hit_ratio")));
  cJSON_Delete(j);
}
END_TEST

START_TEST(test_respond_metrics_reload_drain) {
  standard_view();
  cJSON *j = respond("{\"cmd\":\"metrics\"}", 1, 1, NULL);
  const cJSON *m = item(j, "metrics");
  ck_assert(cJSON_IsString(m));
  char *t = render();
  ck_assert_str_eq(m->valuestring, t);
  free(t);
  cJSON_Delete(j);

  j = respond("{\"cmd\":\"reload\"}", 1, 1, NULL);
  ck_assert(cJSON_IsTrue(item(j, "ok")));
  ck_assert_int_eq(reload_calls, 1);
  cJSON_Delete(j);
  reload_fails = 1;
  j = respond("{\"cmd\":\"reload\"}", 1, 1, NULL);
  ck_assert_str_eq(error_of(j), "x.conf:3: bad value");
  cJSON_Delete(j);

  j = respond("{\"cmd\":\"drain\",\"listener\":\"zz\"}", 1, 1, NULL);
  ck_assert_str_eq(error_of(j), "no listener named \"zz\"");
  ck_assert_int_eq(drain_calls, 0);
  cJSON_Delete(j);
  j = respond("{\"cmd\":\"drain\",\"listener\":\"b\"}", 1, 1, NULL);
  ck_assert(cJSON_IsTrue(item(j, "ok")));
  ck_assert_str_eq(item(j, "listener")->valuestring, "b");
  ck_assert_str_eq(drained, "b");
  cJSON_Delete(j);

  V.reload = NULL;
  V.drain = NULL;
  j = respond("{\"cmd\":\"reload\"}", 1, 1, NULL);
  ck_assert_str_eq(error_of(j), "reload is not supported by this daemon");
  cJSON_Delete(j);
  j = respond("{\"cmd\":\"drain\",\"listener\":\"a\"}", 1, 1, NULL);
  ck_assert_str_eq(error_of(j), "drain is not supported by this daemon");
  cJSON_Delete(j);
  V.reload = do_reload;
  V.drain = do_drain;
}
END_TEST

/* ---- ctl's tables ---- */

static char *print_of(const char *cmd, const char *json) {
  static char out[8192];
  cJSON *j = cJSON_Parse(json);
  ck_assert_ptr_nonnull(j);
  FILE *f = fmemopen(out, sizeof out, "w");
  ck_assert_int_eq(ctl_print(f, cmd, j), 0);
  fclose(f);
  cJSON_Delete(j);
  return out;
}

START_TEST(test_ctl_tables) {
  setenv("TZ", "UTC", 1);
  tzset();
  standard_view();
  ST[1]->sessions_total = 12345;
  S[0]->gen = 3;
  S[0]->fig.first_fault_unix_ns = 1500000;
  S[0]->fig.replay_listed = 100;
  S[0]->fig.replay_installed = 90;
  S[0]->fig.replay_start_unix_ns = 2000000;
  S[0]->fig.replay_end_unix_ns = 14300000;
  char *s =
      control_respond(&V, NULL, "{\"cmd\":\"list\"}", 14, 1, 3000000000ull);
  char *out = print_of("list", s);
  free(s);
  ck_assert_str_eq(
      out,
      "LISTENER  SOCKET       SOURCE      STATE  LIVE  TOTAL  FAULTS  PAGES  "
      "ZERO    BYTES\n"
      "a         /run/a.sock  http+cache  open      1      5     120    108  "
      "  12  432 KiB\n"
      "b         /run/b.sock  mmap        open      0  12345       7      0  "
      "   0      0 B\n"
      "\n"
      "SESSION  LISTENER   PID  UID  REGIONS    MEMORY  PAGE  STARTED        "
      "      PAGES  ZERO     BYTES  FAULTS  FAULTS/S\n"
      "     42  a         1234    0        2  4.00 MiB    4K  1970-01-01 "
      "00:00:00     18     2  72.0 KiB      20       6.7\n"
      "\n"
      "SESSION  GEN  FIRST FAULT          P50          P99  LISTED  REPLAYED  "
      " REPLAY\n"
      "     42    3       1.5 ms  >= 65536 us  >= 65536 us     100        90  "
      "12.3 ms\n");

  NS = 0;
  free(S[0]);
  s = control_respond(&V, NULL, "{\"cmd\":\"list\"}", 14, 1, 1);
  out = print_of("list", s);
  free(s);
  ck_assert_ptr_nonnull(strstr(out, "\n\nno live sessions\n"));

  s = control_respond(&V, NULL, "{\"cmd\":\"stats\"}", 15, 1, 1);
  out = print_of("stats", s);
  free(s);
  static const char *const stats_lines[] = {
      "LISTENER                    a       b",
      "source             http+cache    mmap",
      "sessions total              5   12345",
      "faults                    100       7",
      "bytes copied          360 KiB     0 B",
      "fault time mean   500000.0 us  0.0 us",
      "fault time p50        < 32 us       -",
      "fault time p99        < 32 us       -",
      "LISTENER  INSTANCE  COUNTER         VALUE",
      "a         a/http    bytes_fetched  1000 B",
      "a         a/cache   hits                3",
      "a         a/cache   hit ratio       75.0%",
      "b         b/mmap    odd-name.x          1",
  };
  for (size_t i = 0; i < sizeof stats_lines / sizeof *stats_lines; i++)
    ck_line(out, stats_lines[i]);

  ck_assert_str_eq(print_of("reload", "{\"ok\":true}"),
                   "reloading the configuration\n");
  ck_assert_str_eq(print_of("drain", "{\"ok\":true,\"listener\":\"a\"}"),
                   "listener a is draining\n");
  ck_assert_str_eq(print_of("metrics", "{\"metrics\":\"x 1\\n\"}"), "x 1\n");
}
END_TEST

TCase *requests_tcase(void) {
  TCase *r = tcase_create("requests");
  tcase_add_checked_fixture(r, setup, teardown);
  tcase_add_test(r, test_parse_requests);
  tcase_add_test(r, test_respond_errors);
  tcase_add_test(r, test_respond_list);
  tcase_add_test(r, test_respond_stats);
  tcase_add_test(r, test_respond_metrics_reload_drain);
  tcase_add_test(r, test_ctl_tables);
  return r;
}

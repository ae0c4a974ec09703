/* Unit tests of the control socket's protocol, the Prometheus rendering,
 * the HTTP endpoint and the ctl client's tables, on a synthetic view. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctl.h"
#include "metrics.h"

/* ---- a synthetic view ---- */

#define MAX_L 4
#define MAX_S 4

static struct stats_listener L[MAX_L];
static struct listener_stats *ST[MAX_L];
static int NL;
static struct session_shm *S[MAX_S];
static int NS;
static int reload_calls, drain_calls, reload_fails;
static char drained[64];

static void each_l(void *o, stats_listener_fn fn, void *arg) {
  (void)o;
  for (int i = 0; i < NL; i++)
    fn(arg, &L[i]);
}

static void each_s(void *o, stats_session_fn fn, void *arg) {
  (void)o;
  for (int i = 0; i < NS; i++)
    fn(arg, S[i]);
}

static int do_reload(void *o, char *err, size_t len) {
  (void)o;
  reload_calls++;
  if (reload_fails) {
    snprintf(err, len, "x.conf:3: bad value");
    return -1;
  }
  return 0;
}

static int do_drain(void *o, const char *name, char *err, size_t len) {
  (void)o;
  (void)err;
  (void)len;
  drain_calls++;
  snprintf(drained, sizeof drained, "%s", name);
  return 0;
}

static struct control_view V = {
    .stats = {.each_listener = each_l, .each_session = each_s},
    .reload = do_reload,
    .drain = do_drain};

static void add_listener(const char *name, const char *sock, const char *src) {
  ST[NL] = calloc(1, sizeof *ST[NL]);
  L[NL] = (struct stats_listener){.name = name,
                                  .socket = sock,
                                  .source = src,
                                  .accepting = 1,
                                  .stats = ST[NL]};
  NL++;
}

static struct session_shm *add_session(uint64_t id, const char *listener,
                                       int pid) {
  struct session_shm *s = calloc(1, sizeof *s);
  s->id = id;
  snprintf(s->listener, sizeof s->listener, "%s", listener);
  s->pid = pid;
  s->uid = 0;
  s->page_size = 4096;
  s->nregions = 2;
  s->regions[0].size = 1 << 20;
  s->regions[1].size = 3 << 20;
  S[NS++] = s;
  return s;
}

static void counter(struct listener_stats *st, const char *name,
                    const char *inst, const char *help, uint64_t v) {
  struct plugin_counter *c = &st->counters[st->ncounters++];
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->instance, sizeof c->instance, "%s", inst);
  snprintf(c->help, sizeof c->help, "%s", help);
  c->value = v;
}

static void setup(void) {
  NL = NS = 0;
  reload_calls = drain_calls = reload_fails = 0;
  drained[0] = 0;
}

static void teardown(void) {
  for (int i = 0; i < NL; i++)
    free(ST[i]);
  for (int i = 0; i < NS; i++)
    free(S[i]);
  NL = NS = 0;
}

/* Listener "a" (1 live session) and "b" (none), with plugin counters. */
static void standard_view(void) {
  add_listener("a", "/run/a.sock", "http+cache");
  add_listener("b", "/run/b.sock", "mmap");
  struct listener_stats *a = ST[0], *b = ST[1];
  a->sessions_live = 1;
  a->sessions_total = 5;
  a->refused_peers = 2;
  a->handshake_errors = 3;
  a->worker_restarts = 1;
  a->ended.faults = 100;
  a->ended.pages_copied = 90;
  a->ended.zero_pages = 10;
  a->ended.bytes_copied = 90 * 4096;
  a->ended.removes = 1;
  a->ended.removed_pages = 4;
  a->ended.stale_faults = 6;
  a->ended.eagain = 7;
  a->ended.source_errors = 8;
  a->ended.lat_buckets[0] = 1;
  a->ended.lat_buckets[3] = 2;
  a->ended.lat_sum_ns = 1500000000;
  a->ended.lat_count = 3;
  b->sessions_total = 2;
  b->ended.faults = 7;
  struct session_shm *s = add_session(42, "a", 1234);
  s->counters.faults = 20;
  s->counters.pages_copied = 18;
  s->counters.zero_pages = 2;
  s->counters.bytes_copied = 18 * 4096;
  s->counters.lat_buckets[LAT_BUCKETS - 1] = 1;
  s->counters.lat_sum_ns = 123;
  s->counters.lat_count = 1;
  counter(a, "bytes_fetched", "a/http", "body bytes received", 1000);
  counter(a, "hits", "a/cache", "chunk lookups served from cache", 3);
  counter(a, "misses", "a/cache", "chunk fetches started", 1);
  counter(a, "bytes_fetched", "a/cache", "bytes read from below", 500);
  counter(b, "bytes_fetched", "b/mmap", "", 9);
  counter(b, "odd-name.x", "b/mmap", "a\\b\nc", 1);
  counter(b, "reads_total", "b/mmap", "reads", 2);
}

/* ---- checking text and JSON ---- */

static int has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !memcmp(p, line, n)) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

static int count_substr(const char *text, const char *sub) {
  int n = 0;
  for (const char *p = strstr(text, sub); p; p = strstr(p + 1, sub))
    n++;
  return n;
}

#define ck_line(text, line)                                                    \
  ck_assert_msg(has_line(text, line), "missing line: %s\n--- in:\n%s", line,   \
                text)

static char *render(void) {
  size_t len = 0;
  char *t = metrics_render(&V.stats, &len);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(len, strlen(t));
  return t;
}

static cJSON *respond(const char *req, uint64_t now, uint64_t unix_now,
                      struct stats_rates *r) {
  char *s = control_respond(&V, r, req, strlen(req), now, unix_now);
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_null(strchr(s, '\n'));
  cJSON *j = cJSON_Parse(s);
  ck_assert_msg(j != NULL, "not JSON: %s", s);
  free(s);
  return j;
}

static const char *error_of(const cJSON *j) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  return cJSON_IsString(e) ? e->valuestring : NULL;
}

/* ---- metrics ---- */

START_TEST(test_metrics_counters) {
  standard_view();
  char *t = render();
  ck_line(t, "# HELP uffdkit_faults_total Page faults read from "
             "userfaultfds.");
  ck_line(t, "# TYPE uffdkit_faults_total counter");
  ck_line(t, "uffdkit_faults_total{listener=\"a\"} 120");
  ck_line(t, "uffdkit_faults_total{listener=\"b\"} 7");
  ck_line(t, "uffdkit_pages_copied_total{listener=\"a\"} 108");
  ck_line(t, "uffdkit_zero_pages_total{listener=\"a\"} 12");
  ck_line(t, "uffdkit_bytes_copied_total{listener=\"a\"} 442368");
  ck_line(t, "uffdkit_removes_total{listener=\"a\"} 1");
  ck_line(t, "uffdkit_removed_pages_total{listener=\"a\"} 4");
  ck_line(t, "uffdkit_stale_faults_total{listener=\"a\"} 6");
  ck_line(t, "uffdkit_eagain_total{listener=\"a\"} 7");
  ck_line(t, "uffdkit_source_errors_total{listener=\"a\"} 8");
  ck_line(t, "uffdkit_prefetched_pages_total{listener=\"b\"} 0");
  ck_line(t, "# TYPE uffdkit_sessions_live gauge");
  ck_line(t, "uffdkit_sessions_live{listener=\"a\"} 1");
  ck_line(t, "uffdkit_sessions_total{listener=\"a\"} 5");
  ck_line(t, "uffdkit_sessions_total{listener=\"b\"} 2");
  ck_line(t, "uffdkit_refused_peers_total{listener=\"a\"} 2");
  ck_line(t, "uffdkit_handshake_errors_total{listener=\"a\"} 3");
  ck_line(t, "uffdkit_worker_restarts_total{listener=\"a\"} 1");
  ck_line(t, "uffdkit_listener_info{listener=\"a\",socket=\"/run/a.sock\","
             "source=\"http+cache\"} 1");
  ck_assert_int_eq(t[strlen(t) - 1], '\n');
  free(t);
}
END_TEST

START_TEST(test_metrics_histogram) {
  standard_view();
  char *t = render();
  const char *m = "uffdkit_fault_service_seconds";
  char line[256];
  snprintf(line, sizeof line, "# TYPE %s histogram", m);
  ck_line(t, line);
  /* Buckets 0 (1), 3 (2) and the last (1, from the live session). */
  static const char *const le[LAT_BUCKETS] = {
      "0.000004", "0.000008", "0.000016", "0.000032", "0.000064", "0.000128",
      "0.000256", "0.000512", "0.001024", "0.002048", "0.004096", "0.008192",
      "0.016384", "0.032768", "0.065536", "+Inf"};
  for (int k = 0; k < LAT_BUCKETS; k++) {
    int cum = k < 3 ? 1 : k < LAT_BUCKETS - 1 ? 3 : 4;
    snprintf(line, sizeof line, "%s_bucket{listener=\"a\",le=\"%s\"} %d", m,
             le[k], cum);
    ck_line(t, line);
    snprintf(line, sizeof line, "%s_bucket{listener=\"b\",le=\"%s\"} 0", m,
             le[k]);
    ck_line(t, line);
  }
  snprintf(line, sizeof line, "%s_sum{listener=\"a\"} 1.500000123", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_count{listener=\"a\"} 4", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_sum{listener=\"b\"} 0", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_count{listener=\"b\"} 0", m);
  ck_line(t, line);
  ck_assert_int_eq(count_substr(t, "_bucket{listener=\"a\""), LAT_BUCKETS);
  free(t);
}
END_TEST

START_TEST(test_metrics_plugin_counters) {
  standard_view();
  char *t = render();
  /* One family across listeners and instances, with the first help. */
  ck_line(t, "# HELP uffdkit_plugin_bytes_fetched_total body bytes received");
  ck_line(t, "# TYPE uffdkit_plugin_bytes_fetched_total counter");
  ck_assert_int_eq(
      count_substr(t, "# TYPE uffdkit_plugin_bytes_fetched_total "), 1);
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"a\","
             "instance=\"a/http\"} 1000");
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"a\","
             "instance=\"a/cache\"} 500");
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"b\","
             "instance=\"b/mmap\"} 9");
  ck_line(t, "uffdkit_plugin_hits_total{listener=\"a\",instance=\"a/cache\"} "
             "3");
  /* Names made valid, _total not doubled, help escaped. */
  ck_line(t, "uffdkit_plugin_odd_name_x_total{listener=\"b\","
             "instance=\"b/mmap\"} 1");
  ck_line(t, "# HELP uffdkit_plugin_odd_name_x_total a\\\\b\\nc");
  ck_line(t, "uffdkit_plugin_reads_total{listener=\"b\",instance=\"b/mmap\"} "
             "2");
  free(t);
}
END_TEST

/* Every sample follows the TYPE line of its own family, and each family
 * is declared once: what the 0.0.4 text format requires. */
START_TEST(test_metrics_grouping) {
  standard_view();
  char *t = render();
  char family[128] = "", seen[64][128];
  int nseen = 0;
  for (char *p = t; *p;) {
    char *e = strchr(p, '\n');
    ck_assert_ptr_nonnull(e);
    *e = 0;
    char name[128];
    if (sscanf(p, "# TYPE %127s", name) == 1) {
      for (int i = 0; i < nseen; i++)
        ck_assert_str_ne(seen[i], name);
      snprintf(seen[nseen++], sizeof seen[0], "%s", name);
      snprintf(family, sizeof family, "%s", name);
    } else if (p[0] != '#') {
      size_t n = strcspn(p, "{ ");
      ck_assert_msg(!strncmp(p, family, strlen(family)) &&
                        (n == strlen(family) ||
                         !strcmp(p + strlen(family), "") ||
                         p[strlen(family)] == '_'),
                    "sample %s outside its family %s", p, family);
    }
    p = e + 1;
  }
  free(t);
}
END_TEST

START_TEST(test_metrics_escaping) {
  add_listener("we\"ird\\na\nme", "/run/x \"y\".sock", "mmap");
  counter(ST[0], "c", "in\"st\\", "h", 5);
  char *t = render();
  ck_line(t, "uffdkit_faults_total{listener=\"we\\\"ird\\\\na\\nme\"} 0");
  ck_line(t, "uffdkit_listener_info{listener=\"we\\\"ird\\\\na\\nme\","
             "socket=\"/run/x \\\"y\\\".sock\",source=\"mmap\"} 1");
  ck_line(t, "uffdkit_plugin_c_total{listener=\"we\\\"ird\\\\na\\nme\","
             "instance=\"in\\\"st\\\\\"} 5");
  free(t);
}
END_TEST

START_TEST(test_metrics_empty) {
  char *t = render();
  ck_line(t, "# TYPE uffdkit_faults_total counter");
  ck_assert_ptr_null(strstr(t, "{"));
  free(t);
}
END_TEST

START_TEST(test_metrics_listen_parse) {
  struct sockaddr_storage ss;
  socklen_t len;
  char err[256];
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  ck_assert_int_eq(metrics_parse_listen("9464", &ss, &len, err, sizeof err), 0);
  ck_assert_int_eq(a4->sin_family, AF_INET);
  ck_assert_uint_eq(ntohs(a4->sin_port), 9464);
  ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
  ck_assert_int_eq(
      metrics_parse_listen("0.0.0.0:80", &ss, &len, err, sizeof err), 0);
  ck_assert_uint_eq(a4->sin_addr.s_addr, 0);
  ck_assert_int_eq(
      metrics_parse_listen("localhost:1", &ss, &len, err, sizeof err), 0);
  ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
  ck_assert_int_eq(
      metrics_parse_listen("[::1]:9464", &ss, &len, err, sizeof err), 0);
  ck_assert_int_eq(a6->sin6_family, AF_INET6);
  ck_assert_uint_eq(ntohs(a6->sin6_port), 9464);
  ck_assert_uint_eq(len, sizeof *a6);
  static const struct {
    const char *in, *msg;
  } bad[] = {
      {":9464", "give a host"},
      {"host:abc", "port must be"},
      {"1.2.3.4:70000", "port must be"},
      {"::1:9464", "brackets"},
      {"example.com:80", "not an IP address"},
      {"[::1]9464", "expected [IPV6]:PORT"},
      {"", "port must be"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    ck_assert_int_eq(
        metrics_parse_listen(bad[i].in, &ss, &len, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad[i].msg), "'%s': %s", bad[i].in, err);
  }
}
END_TEST

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

/* ---- the socket ---- */

/* Made by main, so it is removed even when a test fails (a failed test
 * skips its teardown); each test works in a directory of its own in it. */
static char basedir[64];
static char tmpdir[80];

/* mkdtemp's template: six 'X' at the end of prefix. */
static char *make_dir(char *buf, size_t len, const char *prefix) {
  int n = snprintf(buf, len, "%s", prefix);
  if (n < 0 || (size_t)n + 7 > len) return NULL;
  memset(buf + n, 'X', 6);
  buf[n + 6] = 0;
  return mkdtemp(buf);
}

static void sock_setup(void) {
  setup();
  char prefix[72];
  snprintf(prefix, sizeof prefix, "%s/t.", basedir);
  ck_assert_ptr_nonnull(make_dir(tmpdir, sizeof tmpdir, prefix));
}

static void sock_teardown(void) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
  teardown();
}

static struct control *open_ctl(const char *path) {
  struct daemon_conf conf = {.control_socket = path};
  struct control *c = NULL;
  char err[512] = "";
  ck_assert_msg(control_open(&c, &conf, &V, err, sizeof err) == 0, "%s", err);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_ge(control_fd(c), 0);
  return c;
}

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Runs the control loop as the supervisor would until fd has data or
 * closes, at most ms milliseconds; returns the bytes read (0: closed, -1:
 * nothing in time). */
static ssize_t pump_read(struct control *c, int fd, char *buf, size_t len,
                         int ms) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, control_fd(c), &e);
  ssize_t r = -1;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct epoll_event ev;
    epoll_wait(ep, &ev, 1, control_timeout(c, 10));
    control_run(c);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1) {
      r = recv(fd, buf, len, MSG_DONTWAIT);
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
      break;
  }
  close(ep);
  return r;
}

/* Reads one whole response line. */
static char *read_reply(struct control *c, int fd) {
  static char buf[1 << 20];
  size_t len = 0;
  while (!memchr(buf, '\n', len)) {
    ssize_t n = pump_read(c, fd, buf + len, sizeof buf - len - 1, 2000);
    ck_assert_int_gt(n, 0);
    len += (size_t)n;
  }
  buf[len] = 0;
  return buf;
}

START_TEST(test_socket_roundtrip) {
  standard_view();
  char path[96];
  snprintf(path, sizeof path, "%s/sub/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(fcntl(control_fd(c), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  int fd = connect_to(path);
  /* Two requests in one write, then one in two pieces. */
  const char *two = "{\"cmd\":\"stats\"}\n{\"cmd\":\"bad\"}\n";
  ck_assert_int_eq(write(fd, two, strlen(two)), (ssize_t)strlen(two));
  char *r = read_reply(c, fd);
  ck_assert_str_eq(r + strlen(r) - 1, "\n");
  char *nl = strchr(r, '\n');
  if (nl[1] == 0) { /* the second reply had not arrived yet */
    ck_assert_ptr_nonnull(strstr(r, "\"listeners\""));
    r = read_reply(c, fd);
    ck_assert_ptr_nonnull(strstr(r, "\"error\":\"unknown cmd \\\"bad\\\""));
  } else {
    ck_assert_ptr_nonnull(strstr(nl + 1, "unknown cmd"));
  }
  ck_assert_int_eq(write(fd, "{\"cmd\":", 7), 7);
  char tmp[16];
  ck_assert_int_eq(pump_read(c, fd, tmp, sizeof tmp, 100), -1);
  ck_assert_int_eq(write(fd, "\"list\"}\r\n", 9), 9);
  r = read_reply(c, fd);
  ck_assert_ptr_nonnull(strstr(r, "\"sessions\":[{\"id\":42,"));
  /* A last request without a newline is answered at end of input. */
  ck_assert_int_eq(write(fd, "{\"cmd\":\"metrics\"}", 17), 17);
  shutdown(fd, SHUT_WR);
  r = read_reply(c, fd);
  ck_assert_ptr_nonnull(strstr(r, "{\"metrics\":\"# HELP"));
  ck_assert_int_eq(pump_read(c, fd, tmp, sizeof tmp, 1000), 0);
  close(fd);
  control_close(c);
  ck_assert_int_eq(stat(path, &st), -1);
}
END_TEST

START_TEST(test_socket_oversize) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fd = connect_to(path);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char chunk[8192];
  memset(chunk, ' ', sizeof chunk);
  size_t sent = 0;
  char buf[4096];
  ssize_t n = -1;
  /* Keep sending until the server gives up on the request. */
  for (int i = 0; i < 200 && n < 0; i++) {
    ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (w > 0) sent += (size_t)w;
    n = pump_read(c, fd, buf, sizeof buf - 1, 0);
  }
  ck_assert_int_gt(n, 0);
  ck_assert_uint_gt(sent, CONTROL_MAX_REQUEST);
  buf[n] = 0;
  ck_assert_str_eq(buf, "{\"error\":\"request longer than 65536 "
                        "bytes\",\"code\":\"bad_request\"}\n");
  /* And the connection is closed. */
  for (int i = 0; i < 100 && n > 0; i++)
    n = pump_read(c, fd, buf, sizeof buf, 20);
  ck_assert_int_le(n, 0);
  close(fd);
  control_close(c);
}
END_TEST

START_TEST(test_socket_slow_client) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fd = connect_to(path);
  ck_assert_int_eq(write(fd, "{\"cmd\"", 6), 6);
  time_t t0 = time(NULL);
  char buf[64];
  ssize_t n =
      pump_read(c, fd, buf, sizeof buf, CONTROL_CLIENT_TIMEOUT_MS + 2000);
  ck_assert_int_eq(n, 0); /* closed, without an answer */
  ck_assert_int_ge(time(NULL) - t0, CONTROL_CLIENT_TIMEOUT_MS / 1000 - 1);
  close(fd);
  control_close(c);
}
END_TEST

START_TEST(test_socket_too_many_clients) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fds[CONTROL_MAX_CLIENTS + 1];
  for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
    fds[i] = connect_to(path);
    control_run(c);
  }
  fds[CONTROL_MAX_CLIENTS] = connect_to(path);
  char buf[256];
  ssize_t n = pump_read(c, fds[CONTROL_MAX_CLIENTS], buf, sizeof buf - 1, 500);
  ck_assert_int_gt(n, 0);
  buf[n] = 0;
  ck_assert_ptr_nonnull(strstr(buf, "too many control connections"));
  for (int i = 0; i <= CONTROL_MAX_CLIENTS; i++)
    close(fds[i]);
  control_close(c);
}
END_TEST

START_TEST(test_socket_stale_and_errors) {
  char path[96], err[512];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  /* A socket file nobody listens on is replaced. */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  close(s);
  struct control *c = open_ctl(path);
  /* A second daemon on the same path is refused... */
  struct daemon_conf conf = {.control_socket = path};
  struct control *c2 = NULL;
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "another process is listening on it"));
  control_close(c);
  /* ...and so is a file that is not a socket. */
  FILE *f = fopen(path, "w");
  fclose(f);
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "exists and is not a socket"));
  /* "" and no metrics: nothing to serve. */
  conf.control_socket = "";
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), 0);
  ck_assert_ptr_null(c2);
  ck_assert_int_eq(control_fd(NULL), -1);
  ck_assert_int_eq(control_timeout(NULL, 7), 7);
  control_run(NULL);
  control_close(NULL);
  /* A bad metrics address is an error. */
  conf.metrics_listen = "nowhere:80";
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "not an IP address"));
}
END_TEST

/* ---- HTTP ---- */

struct http_get {
  int port;
  const char *request;
  char reply[1 << 16];
  size_t len;
};

static void *http_client(void *arg) {
  struct http_get *g = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)g->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      write(fd, g->request, strlen(g->request)) ==
          (ssize_t)strlen(g->request)) {
    ssize_t n;
    while ((n = read(fd, g->reply + g->len, sizeof g->reply - g->len - 1)) > 0)
      g->len += (size_t)n;
  }
  g->reply[g->len] = 0;
  close(fd);
  return NULL;
}

/* One HTTP exchange, served from this thread as the supervisor would. */
static void http_exchange(struct metrics_http *h, struct http_get *g) {
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, http_client, g), 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, metrics_http_fd(h), &e);
  for (int i = 0; i < 300; i++) {
    int to = metrics_http_timeout(h);
    epoll_wait(ep, &e, 1, to < 0 || to > 10 ? 10 : to);
    metrics_http_run(h);
    if (pthread_tryjoin_np(t, NULL) == 0) {
      close(ep);
      return;
    }
  }
  ck_abort_msg("HTTP exchange did not finish");
}

START_TEST(test_http_metrics) {
  standard_view();
  char err[512];
  struct metrics_http *h =
      metrics_http_start("127.0.0.1:0", &V.stats, err, sizeof err);
  ck_assert_msg(h != NULL, "%s", err);
  ck_assert_int_gt(metrics_http_port(h), 0);
  static struct http_get g;
  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 200 OK\r\n", 17), "%s", g.reply);
  ck_assert_ptr_nonnull(strcasestr(
      g.reply, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
  char *body = strstr(g.reply, "\r\n\r\n");
  ck_assert_ptr_nonnull(body);
  char *t = render();
  ck_assert_str_eq(body + 4, t);
  free(t);

  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 404", 12), "%s", g.reply);

  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 405", 12), "%s", g.reply);
  ck_assert_ptr_nonnull(strcasestr(g.reply, "\r\nAllow: GET, HEAD"));

  /* The same port twice is an error naming the address. */
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", metrics_http_port(h));
  ck_assert_ptr_null(metrics_http_start(addr, &V.stats, err, sizeof err));
  ck_assert_msg(strstr(err, "cannot listen on 127.0.0.1:"), "%s", err);
  metrics_http_stop(h);
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

/* ---- the client against no daemon ---- */

START_TEST(test_ctl_no_daemon) {
  char path[96];
  snprintf(path, sizeof path, "%s/none.sock", tmpdir);
  char *argv[] = {"uffdkit", "ctl", "--socket", path, "list", NULL};
  ck_assert_int_eq(ctl_main(5, argv), CTL_NO_DAEMON);
  char *bad[] = {"uffdkit", "ctl", "frob", NULL};
  ck_assert_int_eq(ctl_main(3, bad), CTL_USAGE);
  char *drain[] = {"uffdkit", "ctl", "drain", NULL};
  ck_assert_int_eq(ctl_main(3, drain), CTL_USAGE);
  char *extra[] = {"uffdkit", "ctl", "list", "x", NULL};
  ck_assert_int_eq(ctl_main(4, extra), CTL_USAGE);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("control");
  TCase *m = tcase_create("metrics");
  tcase_add_checked_fixture(m, setup, teardown);
  tcase_add_test(m, test_metrics_counters);
  tcase_add_test(m, test_metrics_histogram);
  tcase_add_test(m, test_metrics_plugin_counters);
  tcase_add_test(m, test_metrics_grouping);
  tcase_add_test(m, test_metrics_escaping);
  tcase_add_test(m, test_metrics_empty);
  tcase_add_test(m, test_metrics_listen_parse);
  suite_add_tcase(s, m);
  TCase *r = tcase_create("requests");
  tcase_add_checked_fixture(r, setup, teardown);
  tcase_add_test(r, test_parse_requests);
  tcase_add_test(r, test_respond_errors);
  tcase_add_test(r, test_respond_list);
  tcase_add_test(r, test_respond_stats);
  tcase_add_test(r, test_respond_metrics_reload_drain);
  tcase_add_test(r, test_ctl_tables);
  suite_add_tcase(s, r);
  TCase *k = tcase_create("socket");
  tcase_add_checked_fixture(k, sock_setup, sock_teardown);
  tcase_set_timeout(k, 30);
  tcase_add_test(k, test_socket_roundtrip);
  tcase_add_test(k, test_socket_oversize);
  tcase_add_test(k, test_socket_slow_client);
  tcase_add_test(k, test_socket_too_many_clients);
  tcase_add_test(k, test_socket_stale_and_errors);
  tcase_add_test(k, test_ctl_no_daemon);
#ifdef UFFDKIT_HAVE_MHD
  tcase_add_test(k, test_http_metrics);
#endif
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  if (!make_dir(basedir, sizeof basedir, "/tmp/ctl-test.")) {
    perror("mkdtemp");
    return 1;
  }
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", basedir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", basedir);
  return failed ? 1 : 0;
}

/* Unit tests of the control socket's protocol, the Prometheus rendering,
 * the HTTP endpoint and the ctl client's tables, on a synthetic view: the
 * view here, the tests in test_control_{metrics,requests,socket}.c. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "ctltest.h"

/* ---- a synthetic view ---- */

struct stats_listener L[MAX_L];
struct listener_stats *ST[MAX_L];
int NL;
struct session_shm *S[MAX_S];
int NS;
int reload_calls, drain_calls, reload_fails;
char drained[64];

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

int do_reload(void *o, char *err, size_t len) {
  (void)o;
  reload_calls++;
  if (reload_fails) {
    snprintf(err, len, "x.conf:3: bad value");
    return -1;
  }
  return 0;
}

int do_drain(void *o, const char *name, char *err, size_t len) {
  (void)o;
  (void)err;
  (void)len;
  drain_calls++;
  snprintf(drained, sizeof drained, "%s", name);
  return 0;
}

struct control_view V = {
    .stats = {.each_listener = each_l, .each_session = each_s},
    .reload = do_reload,
    .drain = do_drain};

void add_listener(const char *name, const char *sock, const char *src) {
  ST[NL] = calloc(1, sizeof *ST[NL]);
  L[NL] = (struct stats_listener){.name = name,
                                  .socket = sock,
                                  .source = src,
                                  .accepting = 1,
                                  .stats = ST[NL]};
  NL++;
}

struct session_shm *add_session(uint64_t id, const char *listener, int pid) {
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

void counter(struct listener_stats *st, const char *name, const char *inst,
             const char *help, uint64_t v) {
  struct plugin_counter *c = &st->counters[st->ncounters++];
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->instance, sizeof c->instance, "%s", inst);
  snprintf(c->help, sizeof c->help, "%s", help);
  c->value = v;
}

void setup(void) {
  NL = NS = 0;
  reload_calls = drain_calls = reload_fails = 0;
  drained[0] = 0;
}

void teardown(void) {
  for (int i = 0; i < NL; i++)
    free(ST[i]);
  for (int i = 0; i < NS; i++)
    free(S[i]);
  NL = NS = 0;
}

/* Listener "a" (1 live session) and "b" (none), with plugin counters. */
void standard_view(void) {
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

int has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !memcmp(p, line, n)) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

int count_substr(const char *text, const char *sub) {
  int n = 0;
  for (const char *p = strstr(text, sub); p; p = strstr(p + 1, sub))
    n++;
  return n;
}

char *render(void) {
  size_t len = 0;
  char *t = metrics_render(&V.stats, &len);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(len, strlen(t));
  return t;
}

cJSON *respond(const char *req, uint64_t now, uint64_t unix_now,
               struct stats_rates *r) {
  char *s = control_respond(&V, r, req, strlen(req), now, unix_now);
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_null(strchr(s, '\n'));
  cJSON *j = cJSON_Parse(s);
  ck_assert_msg(j != NULL, "not JSON: %s", s);
  free(s);
  return j;
}

const char *error_of(const cJSON *j) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  return cJSON_IsString(e) ? e->valuestring : NULL;
}

static Suite *suite(void) {
  Suite *s = suite_create("control");
  suite_add_tcase(s, metrics_tcase());
  suite_add_tcase(s, requests_tcase());
  suite_add_tcase(s, socket_tcase());
  return s;
}

int main(void) {
  if (!make_dir(basedir, sizeof basedir, "/tmp/ctl-test.")) {
    perror("mkdtemp");
    return 1;
  }
  int failed = ufk_check_run(suite());
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", basedir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", basedir);
  return failed ? 1 : 0;
}

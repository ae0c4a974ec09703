/* The supervisor never dies of running out of memory: each path it runs
 * (loading a configuration on reload or serve, parsing a handshake,
 * answering a control request, taking the worker's messages) is run once
 * per allocation it makes, with
 * that allocation failing, and must fail cleanly or carry on, never crash
 * (the ASan build also checks nothing leaks).  The binary is linked with
 * --wrap for malloc, calloc, realloc and strdup, so every call from the
 * daemon's libraries comes here; cJSON's go through its hooks. */
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkrun.h"
#include "config.h"
#include "control.h"
#include "handshake.h"
#include "ipc.h"
#include "sv.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

/* Allocations left before the one that fails (< 0: none fails), and
 * whether that one came. */
static long left = -1;
static int failed;

static int fail_now(void) {
  if (left < 0 || left-- > 0) return 0;
  failed = 1;
  return 1;
}

void *__wrap_malloc(size_t n) {
  return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
  return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
  return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
  return fail_now() ? NULL : __real_strdup(s);
}

/* An assertion, with nothing failing while Check reports it (Check
 * allocates, and its calls come here too). */
#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    long keep_ = left;                                                         \
    left = -1;                                                                 \
    ck_assert_msg(cond, __VA_ARGS__);                                          \
    left = keep_;                                                              \
  } while (0)

static void *json_malloc(size_t n) {
  return fail_now() ? NULL : __real_malloc(n);
}

/* Runs step with allocation k failing, for k = 0, 1, ... until a run
 * makes no k-th allocation; step returns whether it failed cleanly (1) or
 * succeeded (0), and asserts what it must. */
static void each_failure(int (*step)(void), const char *what) {
  cJSON_InitHooks(&(cJSON_Hooks){json_malloc, free});
  long k = 0;
  for (;; k++) {
    failed = 0;
    left = k;
    int r = step();
    left = -1;
    if (!failed) {
      ck_assert_msg(r == 0, "%s: failed with no allocation failing", what);
      break;
    }
  }
  cJSON_InitHooks(NULL);
  ck_assert_msg(k > 3, "%s: only %ld allocations: is the wrap linked?", what,
                k);
}

static const char CONFIG[] =
    "uffdkit = { log_level = \"info\"; control_allow_uids = [ 0, 1 ]; };\n"
    "listeners = ( { name = \"a\"; socket = \"/tmp/a.sock\";\n"
    "  allow_uids = [ 0 ]; source = { plugin = \"mmap\"; path = \"/m\"; };\n"
    "  layers = ( { layer = \"cache\"; size = \"1G\"; } ); } );\n"
    "templates = ( { name = \"t\"; vars = [ \"build\" ];\n"
    "  socket = \"/tmp/{id}.sock\"; serve_uids = [ 0 ];\n"
    "  source = { plugin = \"file\"; path = \"/s/{build}\"; }; } );\n";

static int load_config(void) {
  struct daemon_conf c;
  struct conf_err e = {.line = 0};
  int r = conf_load_string(&c, CONFIG, "nomem.conf", &e);
  CHECK(r == 0 || failed, "refused with nothing failing: %s", conf_err_str(&e));
  CHECK(r == 0 || strstr(e.msg, "out of memory"), "failed saying '%s'",
        conf_err_str(&e));
  const struct template_conf *t = r < 0 ? NULL : template_find(&c, "t");
  char *text = NULL;
  if (t) {
    struct template_var v[] = {{"build", "b1"}};
    text = template_expand(&c, t, "r1", v, 1, NULL, &e);
    if (!text) r = -1;
  }
  free(text);
  conf_free(&c);
  return r < 0;
}

START_TEST(config) {
  each_failure(load_config, "loading a configuration");
}
END_TEST

static int parse_handshake(void) {
  static const char text[] =
      "[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0},"
      "{\"base_host_virt_addr\":16384,\"size\":8192,\"offset\":4096}]";
  struct handshake h;
  char err[256] = "";
  int r = handshake_parse(text, strlen(text), 64, &h, err, sizeof err);
  if (r == HS_COMPLETE) return 0;
  CHECK(failed && r == HS_INVALID && err[0], "handshake: result %d, '%s'", r,
        err);
  return 1;
}

START_TEST(handshake) {
  each_failure(parse_handshake, "parsing a handshake");
}
END_TEST

/* A view of one listener with one live session. */
static struct listener_stats LS;
static struct session_shm SESSION;

static void each_listener(void *o, stats_listener_fn fn, void *arg) {
  (void)o;
  struct stats_listener l = {.name = "a",
                             .socket = "/tmp/a.sock",
                             .source = "mmap+cache",
                             .accepting = 1,
                             .stats = &LS};
  fn(arg, &l);
}

static void each_session(void *o, stats_session_fn fn, void *arg) {
  (void)o;
  fn(arg, &SESSION);
}

static struct stats_rates *RATES;

static int respond(const char *req) {
  struct control_view v = {
      .stats = {.each_listener = each_listener, .each_session = each_session}};
  char *s = control_respond(&v, RATES, req, strlen(req), 1000000000ull,
                            1700000000000000000ull);
  CHECK(s || failed, "%s: no answer with nothing failing", req);
  if (!s) return 1;
  long keep = left;
  left = -1;
  cJSON *j = cJSON_Parse(s);
  ck_assert_msg(j, "%s: answer is not JSON: %s", req, s);
  int error = cJSON_GetObjectItemCaseSensitive(j, "error") != NULL;
  cJSON_Delete(j);
  free(s);
  ck_assert_msg(!error || failed, "%s: an error with nothing failing", req);
  left = keep;
  return error;
}

static int respond_list(void) {
  return respond("{\"cmd\":\"list\"}");
}

static int respond_stats(void) {
  return respond("{\"cmd\":\"stats\"}");
}

static int respond_metrics(void) {
  return respond("{\"cmd\":\"metrics\"}");
}

START_TEST(control) {
  SESSION.id = 7;
  snprintf(SESSION.listener, sizeof SESSION.listener, "a");
  SESSION.pid = 1234;
  SESSION.page_size = 4096;
  SESSION.nregions = 1;
  SESSION.regions[0].size = 1 << 20;
  SESSION.counters.faults = 3;
  LS.sessions_live = 1;
  RATES = stats_rates_new();
  ck_assert_ptr_nonnull(RATES);
  each_failure(respond_list, "answering list");
  each_failure(respond_stats, "answering stats");
  each_failure(respond_metrics, "answering metrics");
  stats_rates_free(RATES);
}
END_TEST

/* The worker's messages (workerproc.c's on_worker_msg): NPINS data files
 * pinned to generation 1, and one for a restore already gone.  Each pin
 * the supervisor finds memory for is kept; the one that finds none is
 * closed (the next worker opens that file by path), and nothing else is
 * lost or leaked. */
#define NPINS 6

static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

static void send_pin(int sock, uint64_t gen, const char *restore) {
  struct ipc_msg m = {.type = IPC_PIN, .id = gen};
  snprintf(m.name, sizeof m.name, "%s", restore);
  int fds[2] = {open("/dev/null", O_RDONLY | O_CLOEXEC),
                open("/dev/null", O_RDONLY | O_CLOEXEC)};
  CHECK(fds[0] >= 0 && fds[1] >= 0 && ipc_send(sock, &m, fds, 2) == 0,
        "cannot send a pin");
  close(fds[0]);
  close(fds[1]);
}

static int worker_pins(void) {
  int before = open_fds(), sp[2];
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0,
        "socketpair");
  struct sv v = {.w = {.pid = 0, .ipc = sp[0]}};
  struct gen g = {.id = 1, .w = &v.w};
  v.gens = &g;
  pinlist_init(&g.pins, 'F', 'N', "1", "configuration generation 1");
  for (int i = 0; i < NPINS; i++) {
    if (i == 2) send_pin(sp[1], 1, "gone");
    send_pin(sp[1], 1, "");
  }
  on_worker_msg(&v);
  CHECK(g.pins.n == NPINS - failed, "%d pins kept of %d, with %d failing",
        g.pins.n, NPINS, failed);
  for (int i = 0; i < g.pins.n; i++)
    CHECK(fcntl(g.pins.pins[i].fd, F_GETFD) >= 0 &&
              fcntl(g.pins.pins[i].meta, F_GETFD) >= 0,
          "pin %d is not open", i);
  pinlist_free(&g.pins);
  close(sp[0]);
  close(sp[1]);
  CHECK(open_fds() == before, "%d descriptors open, %d before", open_fds(),
        before);
  return failed;
}

START_TEST(worker) {
  each_failure(worker_pins, "taking the worker's pins");
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-nomem");
  TCase *t = tcase_create("config");
  tcase_add_test(t, config);
  suite_add_tcase(s, t);
  t = tcase_create("handshake");
  tcase_add_test(t, handshake);
  suite_add_tcase(s, t);
  t = tcase_create("worker");
  tcase_add_test(t, worker);
  suite_add_tcase(s, t);
  t = tcase_create("control");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, control);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

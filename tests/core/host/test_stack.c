/* Unit tests of the source stack: plugins of ABI 1.0, 1.1 and 1.2 serving
 * byte-exact, what a layer leaves NULL passing through (1.2) or not
 * (1.0), mapped pointers released to the level that mapped them, and the
 * thread models the stack enforces.  The plugins are tests/core/host/plugins/
 * contract.c; each counts its calls in host counters read here. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "config.h"
#include "conftext.h"
#include "host.h"
#include "hosttext.h"
#include "plugin.h"
#include "shm.h"
#include "stack.h"

#ifndef TEST_PLUGIN_DIR
#error "TEST_PLUGIN_DIR must name the directory of the test plugins"
#endif
#define DIR TEST_PLUGIN_DIR
#define SIZE (1u << 20)
#define ZERO (64u << 10)

static char ERR[4096];
static struct daemon_conf C;
static struct listener_stats STATS;

/* The stack of a listener "a" on source `src` under `layer` (or none). */
static struct stack *build(const char *src, const char *layer) {
  char text[1024], layers[128] = "";
  if (layer)
    snprintf(layers, sizeof layers, "layers = ( { layer = \"%s\"; } );", layer);
  snprintf(text, sizeof text,
           "uffdkit = { plugin_dir = \"%s\"; };\n"
           "listeners = ( { name = \"a\"; socket = \"/tmp/a\";\n"
           "  source = { plugin = \"%s\"; }; %s } );\n",
           DIR, src, layers);
  memset(&STATS, 0, sizeof STATS);
  ck_assert_msg(conf_load_string_t(&C, text, "test.conf", ERR, sizeof ERR) == 0,
                "%s", ERR);
  struct stack *s = stack_build_t(host_table(), &C, &C.listeners[0], DIR,
                                  &STATS, ERR, sizeof ERR);
  ck_assert_msg(s != NULL, "stack on %s: %s", src, ERR);
  return s;
}

static void teardown_stack(struct stack *s) {
  stack_destroy(s);
  plugin_unload_all();
  conf_free(&C);
}

/* Counter `name` of instance "a/plugin". */
static uint64_t counter(const char *plugin, const char *name) {
  char inst[80];
  snprintf(inst, sizeof inst, "a/%s", plugin);
  for (uint32_t i = 0; i < STATS.ncounters; i++)
    if (!strcmp(STATS.counters[i].name, name) &&
        !strcmp(STATS.counters[i].instance, inst))
      return __atomic_load_n(&STATS.counters[i].value, __ATOMIC_SEQ_CST);
  ck_abort_msg("no counter %s of %s", name, inst);
  return 0;
}

static unsigned char expected(uint64_t k) {
  return k < ZERO ? 0 : (unsigned char)(k * 7);
}

/* One assertion per range: Check marks every assertion it passes. */
static void check_bytes(const unsigned char *p, uint64_t off, uint64_t len,
                        const char *what) {
  uint64_t k = 0;
  while (k < len && p[k] == expected(off + k))
    k++;
  ck_assert_msg(k == len, "%s: byte %llu is %u, not %u", what,
                (unsigned long long)(off + k), k < len ? p[k] : 0,
                k < len ? expected(off + k) : 0);
}

/* Every byte read through the stack, in 64 KiB reads. */
static void reads_exact(struct stack *s, const char *what) {
  static unsigned char buf[64 << 10] __attribute__((aligned(4096)));
  ck_assert_int_eq(stack_size(s), SIZE);
  for (uint64_t off = 0; off < SIZE; off += sizeof buf) {
    ck_assert_msg(stack_read(s, buf, sizeof buf, off, UFK_READ_FAULT) == 0,
                  "%s: read at %llu failed", what, (unsigned long long)off);
    check_bytes(buf, off, sizeof buf, what);
  }
}

/* ---- ABI versions ---- */

static void serves(const char *name) {
  struct stack *s = build(name, NULL);
  reads_exact(s, name);
  const unsigned char *p = stack_map(s, ZERO, 8192);
  ck_assert_msg(p != NULL, "%s: map refused", name);
  check_bytes(p, ZERO, 8192, name);
  stack_release(s, p, ZERO, 8192);
  ck_assert_int_eq(stack_is_zero(s, 0, ZERO), 1);
  ck_assert_int_eq(stack_is_zero(s, ZERO, 4096), 0);
  ck_assert_uint_eq(stack_flags(s), UFK_PLUGIN_FAST);
  char id[64];
  stack_identity(s, id, sizeof id);
  ck_assert_str_eq(id, "contract-source");
  ck_assert_uint_eq(counter(name, "maps"), 1);
  /* Only 1.2 has release: the older sources' pointers live on. */
  ck_assert_uint_eq(counter(name, "releases"), !strcmp(name, "cv12"));
  teardown_stack(s);
}

START_TEST(abi_10_serves) {
  serves("cv10");
}
END_TEST

START_TEST(abi_11_serves) {
  serves("cv11");
}
END_TEST

START_TEST(abi_12_serves) {
  serves("cv12");
}
END_TEST

/* ---- pass-through ---- */

/* A 1.2 layer leaving map, release, extents, prefetch, caps and identity
 * NULL: each is the source's. */
START_TEST(layer_12_passes_through) {
  struct stack *s = build("cv12", "cl12");
  reads_exact(s, "cl12 over cv12");
  ck_assert_uint_eq(stack_flags(s), UFK_PLUGIN_FAST);
  ck_assert_uint_eq(stack_concurrency(s), 0);
  const unsigned char *p = stack_map(s, ZERO + 4096, 4096);
  ck_assert_ptr_nonnull(p);
  check_bytes(p, ZERO + 4096, 4096, "mapped through cl12");
  ck_assert_uint_eq(counter("cv12", "maps"), 1);
  ck_assert_uint_eq(counter("cv12", "releases"), 0);
  stack_release(s, p, ZERO + 4096, 4096);
  ck_assert_uint_eq(counter("cv12", "releases"), 1);
  ck_assert_int_eq(stack_is_zero(s, 0, ZERO), 1);
  ck_assert_int_eq(stack_prefetch(s, 0, 8192), 0);
  ck_assert_uint_eq(counter("cv12", "prefetches"), 1);
  char id[64];
  stack_identity(s, id, sizeof id);
  ck_assert_str_eq(id, "contract-source");
  teardown_stack(s);
}
END_TEST

/* A 1.0 layer leaving them NULL is served as before 1.2: not mappable, no
 * zero extents, prefetches dropped, its own flags. */
START_TEST(layer_10_keeps_its_behaviour) {
  struct stack *s = build("cv12", "cl10");
  reads_exact(s, "cl10 over cv12");
  ck_assert_uint_eq(stack_flags(s), 0);
  ck_assert_ptr_null(stack_map(s, ZERO, 4096));
  ck_assert_uint_eq(counter("cv12", "maps"), 0);
  ck_assert_int_eq(stack_is_zero(s, 0, ZERO), 0);
  ck_assert_int_eq(stack_prefetch(s, 0, 8192), 0);
  ck_assert_uint_eq(counter("cv12", "prefetches"), 0);
  char id[64];
  stack_identity(s, id, sizeof id);
  ck_assert_str_eq(id, "contract-source");
  teardown_stack(s);
}
END_TEST

/* A 1.0 layer mapping through its below cannot release: it is given only
 * pointers that need no release. */
START_TEST(layer_10_gets_no_pointer_to_release) {
  struct stack *s = build("cv12", "cl10map");
  ck_assert_ptr_null(stack_map(s, ZERO, 4096));
  ck_assert_uint_eq(counter("cv12", "maps"), 0);
  teardown_stack(s);
  s = build("cv10", "cl10map");
  const unsigned char *p = stack_map(s, ZERO, 4096);
  ck_assert_ptr_nonnull(p);
  check_bytes(p, ZERO, 4096, "cl10map over cv10");
  stack_release(s, p, ZERO, 4096);
  teardown_stack(s);
}
END_TEST

/* ---- thread models ---- */

struct reader {
  struct stack *s;
  int n, failed;
  int *stop;
  pthread_barrier_t *start; /* or NULL */
  uint32_t flags;           /* of every read */
};

static void *read_loop(void *arg) {
  struct reader *r = arg;
  unsigned char *buf = aligned_alloc(4096, 4096);
  if (r->start) pthread_barrier_wait(r->start);
  for (int i = 0;
       (r->n ? i < r->n : !__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)); i++)
    if (stack_read(r->s, buf, 4096, ZERO + 4096 * (uint64_t)(i % 16),
                   r->flags) < 0 ||
        buf[0] != expected(ZERO + 4096 * (uint64_t)(i % 16)))
      r->failed++;
  free(buf);
  return NULL;
}

/* Six threads of 20 reads each (with flags), started together; returns the
 * most calls the plugin saw at once. */
static uint64_t crowd_with(struct stack *s, const char *plugin,
                           uint32_t flags) {
  pthread_t t[6];
  struct reader r[6];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, 6);
  for (int i = 0; i < 6; i++) {
    r[i] = (struct reader){.s = s, .n = 20, .start = &start, .flags = flags};
    ck_assert_int_eq(pthread_create(&t[i], NULL, read_loop, &r[i]), 0);
  }
  for (int i = 0; i < 6; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(r[i].failed, 0);
  }
  pthread_barrier_destroy(&start);
  return counter(plugin, "peak");
}

static uint64_t crowd(struct stack *s, const char *plugin) {
  return crowd_with(s, plugin, 0);
}

START_TEST(serial_one_call_at_a_time) {
  struct stack *s = build("cserial", NULL);
  ck_assert_uint_eq(stack_concurrency(s), 1);
  ck_assert_uint_eq(crowd(s, "cserial"), 1);
  /* A NOWAIT read of a busy SERIAL instance fails at once, without
   * entering it. */
  int stop = 0;
  struct reader bg = {.s = s, .stop = &stop};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, read_loop, &bg), 0);
  unsigned char *buf = aligned_alloc(4096, 4096);
  int busy = 0;
  for (int i = 0; i < 2000 && !busy; i++) {
    int r = stack_read(s, buf, 4096, ZERO, UFK_READ_NOWAIT);
    busy = r < 0 && errno == EWOULDBLOCK;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  pthread_join(t, NULL);
  free(buf);
  ck_assert_msg(busy, "no NOWAIT read was refused while another ran");
  ck_assert_uint_eq(counter("cserial", "peak"), 1);
  ck_assert_int_eq(bg.failed, 0);
  teardown_stack(s);
}
END_TEST

START_TEST(parallel_up_to_max_concurrency) {
  struct stack *s = build("ctwo", NULL);
  ck_assert_uint_eq(stack_concurrency(s), 2);
  ck_assert_uint_eq(crowd(s, "ctwo"), 2);
  teardown_stack(s);
}
END_TEST

/* Prefetching reads leave one call of the limit to reads a guest waits
 * for: six threads of prefetches never run two calls at once in ctwo. */
START_TEST(prefetch_leaves_one_call) {
  struct stack *s = build("ctwo", NULL);
  ck_assert_uint_eq(crowd_with(s, "ctwo", UFK_READ_PREFETCH), 1);
  teardown_stack(s);
}
END_TEST

/* The key of listener "a" in text (a whole configuration). */
static char *key_of(const char *listener) {
  char text[1024];
  snprintf(text, sizeof text, "listeners = ( %s );\n", listener);
  struct daemon_conf c;
  struct conf_err e;
  ck_assert_msg(conf_load_string(&c, text, "key.conf", &e) == 0, "%s",
                conf_err_str(&e));
  char *k = stack_key(&c.listeners[0], "/plugins");
  ck_assert_ptr_nonnull(k);
  conf_free(&c);
  return k;
}

/* Spelling does not change the key; every value, the name and the layers
 * do. */
START_TEST(key_by_value) {
  const char *base = "{ name = \"a\"; socket = \"/s\";\n"
                     "  source = { plugin = \"http\"; url = \"u\"; "
                     "timeout = 16; };\n"
                     "  layers = ( { layer = \"cache\"; size = \"1G\"; } ); }";
  const char *same[] = {
      "{ socket = \"/other\"; name = \"a\"; fault_around = 4;\n"
      "  layers = ( { size = \"1G\"; layer = \"cache\"; } );\n"
      "  # a comment\n"
      "  source = { timeout = 0x10; url = \"u\"; plugin = \"http\"; }; }",
  };
  const char *differ[] = {
      "{ name = \"b\"; socket = \"/s\"; source = { plugin = \"http\"; "
      "url = \"u\"; timeout = 16; }; layers = ( { layer = \"cache\"; "
      "size = \"1G\"; } ); }",
      "{ name = \"a\"; socket = \"/s\"; source = { plugin = \"http\"; "
      "url = \"v\"; timeout = 16; }; layers = ( { layer = \"cache\"; "
      "size = \"1G\"; } ); }",
      "{ name = \"a\"; socket = \"/s\"; source = { plugin = \"http\"; "
      "url = \"u\"; timeout = 17; }; layers = ( { layer = \"cache\"; "
      "size = \"1G\"; } ); }",
      "{ name = \"a\"; socket = \"/s\"; source = { plugin = \"http\"; "
      "url = \"u\"; timeout = 16; }; layers = ( { layer = \"cache\"; "
      "size = \"2G\"; } ); }",
      "{ name = \"a\"; socket = \"/s\"; source = { plugin = \"http\"; "
      "url = \"u\"; timeout = 16; }; }",
  };
  char *k = key_of(base);
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    char *o = key_of(same[i]);
    ck_assert_str_eq(k, o);
    free(o);
  }
  for (size_t i = 0; i < sizeof differ / sizeof *differ; i++) {
    char *o = key_of(differ[i]);
    ck_assert_msg(strcmp(k, o), "same key for %s", differ[i]);
    free(o);
  }
  free(k);
}
END_TEST

int main(void) {
  Suite *s = suite_create("stack");
  TCase *key = tcase_create("key");
  tcase_add_test(key, key_by_value);
  suite_add_tcase(s, key);
  TCase *abi = tcase_create("abi");
  tcase_add_test(abi, abi_10_serves);
  tcase_add_test(abi, abi_11_serves);
  tcase_add_test(abi, abi_12_serves);
  suite_add_tcase(s, abi);
  TCase *pass = tcase_create("passthrough");
  tcase_add_test(pass, layer_12_passes_through);
  tcase_add_test(pass, layer_10_keeps_its_behaviour);
  tcase_add_test(pass, layer_10_gets_no_pointer_to_release);
  suite_add_tcase(s, pass);
  TCase *threads = tcase_create("threads");
  tcase_set_timeout(threads, 60);
  tcase_add_test(threads, serial_one_call_at_a_time);
  tcase_add_test(threads, parallel_up_to_max_concurrency);
  tcase_add_test(threads, prefetch_leaves_one_call);
  suite_add_tcase(s, threads);
  return ufk_check_run(s);
}

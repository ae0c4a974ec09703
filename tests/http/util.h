/* Shared by the http, cache, readahead, retry and s3 unit tests: test data,
 * plugin instances stacked by hand as the daemon would, and the control
 * interface of faulty_server.py.  The servers are started by run-unit.sh,
 * which passes their addresses in the environment. */
#ifndef UFFDKIT_TESTS_HTTP_UTIL_H
#define UFFDKIT_TESTS_HTTP_UTIL_H

#include <stdint.h>

#include <uffdkit/plugin.h>

/* data.bin: a size that is neither a power of two nor a chunk multiple. */
#define DATA_SIZE (8ull * 1024 * 1024 + 20 * 1024)
#define DATA_SEED 1

struct inst {
  const struct ufk_plugin *p;
  struct ufk_config *cfg;
  void *h;
  struct ufk_next *below;
  struct ufk_next next; /* this instance, as a layer above would see it:
                         * callbacks a layer leaves NULL pass through, as
                         * in the daemon's stack (ABI 1.2) */
};

/* $NAME, or the test aborts with a message. */
const char *env(const char *name);
/* "$NAME/rest" in a static buffer (one of a few rotating ones). */
const char *url(const char *env_name, const char *rest);

/* Deterministic content: byte at offset o of a file made with seed. */
uint8_t pattern(uint64_t seed, uint64_t o);
void make_file(const char *path, uint64_t size, uint64_t seed);
/* Writes data.bin into $HTTP_TEST_ROOT and runs the suite; exit status. */
#include <check.h>
int run_suite(Suite *s);

/* Offset of the first byte of buf that differs, or -1. */
int64_t mismatch(const void *buf, uint64_t off, uint64_t len, uint64_t seed);
void *page_alloc(uint64_t len);

/* Loads PLUGIN_DIR/libNAME.so, creates it over below with "key=value"
 * settings and starts it.  0, or -1 with the fakehost error set. */
int inst_open(struct inst *i, const char *name, struct ufk_next *below,
              const char *const *kv);
void inst_close(struct inst *i);

/* The url= setting of faulty_server.py's data.bin, in a static buffer. */
const char *faulty_data_kv(void);

/* faulty_server.py: arm a fault ("mode=500&count=3"), read counters. */
void faulty(const char *query);
long faulty_requests(void);
/* Disarms faults and zeroes the counts; a fixture calls it before each test
 * so one test's leftover faults never hit the next. */
void faulty_reset(void);
/* The body of GET $ENV_NAME/path (a faulty_server.py's /_headers, say), in
 * a static buffer. */
const char *server_text(const char *env_name, const char *path);
/* Arms "down" for seconds and returns once the listener is closed. */
void faulty_down(double seconds);
/* Returns once the server answers again (after "down"). */
void faulty_wait_up(void);

/* A counter read atomically, for counters that background threads update
 * while the test looks. */
uint64_t counter_now(const char *name);

/* Lines of nginx's access log containing needle, waiting up to 2 s for
 * want of them (nginx writes a line after its answer is out). */
int log_count(const char *needle, int want);

#endif

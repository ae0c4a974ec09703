#include "util.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkrun.h"
#include "fakehost.h"

const char *env(const char *name) {
  const char *v = getenv(name);
  ck_assert_msg(v && *v, "%s is not set: run this test through run-unit.sh",
                name);
  return v;
}

const char *url(const char *env_name, const char *rest) {
  static char bufs[8][512];
  static int n;
  char *b = bufs[n++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", env(env_name), rest);
  return b;
}

static uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint8_t pattern(uint64_t seed, uint64_t o) {
  return (uint8_t)(splitmix(seed * 0x100000001B3ull + o / 8) >> (8 * (o % 8)));
}

void make_file(const char *path, uint64_t size, uint64_t seed) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  for (uint64_t o = 0; o < size; o++)
    fputc(pattern(seed, o), f);
  if (fclose(f)) {
    perror(path);
    exit(1);
  }
}

int64_t mismatch(const void *buf, uint64_t off, uint64_t len, uint64_t seed) {
  const uint8_t *p = buf;
  for (uint64_t i = 0; i < len; i++)
    if (p[i] != pattern(seed, off + i)) return (int64_t)i;
  return -1;
}

void *page_alloc(uint64_t len) {
  void *p = aligned_alloc(4096, (len + 4095) & ~4095ull);
  ck_assert_ptr_nonnull(p);
  return p;
}

static int64_t w_get_size(void *h) {
  struct inst *i = h;
  return i->p->get_size(i->h);
}

static int w_read(void *h, void *buf, uint64_t len, uint64_t off,
                  uint32_t flags) {
  struct inst *i = h;
  return i->p->read(i->h, buf, len, off, flags);
}

static const void *w_map(void *h, uint64_t off, uint64_t len) {
  struct inst *i = h;
  if (i->p->map) return i->p->map(i->h, off, len);
  return i->below ? i->below->map(i->below->handle, off, len) : NULL;
}

static void w_release(void *h, const void *ptr, uint64_t off, uint64_t len) {
  struct inst *i = h;
  if (i->p->map) {
    if (i->p->release) i->p->release(i->h, ptr, off, len);
  } else if (i->below) {
    i->below->release(i->below->handle, ptr, off, len);
  }
}

static int w_extents(void *h, uint64_t off, uint64_t len, ufk_extent_fn fn,
                     void *opaque) {
  struct inst *i = h;
  if (i->p->extents) return i->p->extents(i->h, off, len, fn, opaque);
  return i->below ? i->below->extents(i->below->handle, off, len, fn, opaque)
                  : -1;
}

static int w_prefetch(void *h, uint64_t off, uint64_t len) {
  struct inst *i = h;
  if (i->p->prefetch) return i->p->prefetch(i->h, off, len);
  return i->below->prefetch(i->below->handle, off, len);
}

/* The identity of the source at the bottom, as the daemon's stack gives it. */
static int w_identity(void *h, char *buf, size_t len) {
  struct inst *i = h;
  if (i->below) return i->below->identity(i->below->handle, buf, len);
  return i->p->identity ? i->p->identity(i->h, buf, len) : -1;
}

int inst_open(struct inst *i, const char *name, struct ufk_next *below,
              const char *const *kv) {
  char path[1024];
  snprintf(path, sizeof path, "%s/lib%s.so", PLUGIN_DIR, name);
  memset(i, 0, sizeof *i);
  i->below = below;
  i->p = fakehost_load(path);
  ck_assert_msg(i->p, "load %s: %s", path, fakehost_last_error());
  i->cfg = fakehost_config(i->p->params, kv);
  if (!i->cfg) return -1;
  i->h = i->p->create(i->cfg, below);
  if (!i->h) return -1;
  if (i->p->start && i->p->start(i->h) < 0) return -1;
  struct ufk_caps caps = {.flags = i->p->flags & ~UFK_PLUGIN_LAYER};
  if (i->p->caps)
    i->p->caps(i->h, &caps);
  else if (below)
    caps.flags = below->flags & (UFK_PLUGIN_FAST | UFK_PLUGIN_NOWAIT);
  i->next = (struct ufk_next){
      .size = sizeof(struct ufk_next),
      .flags = caps.flags,
      .handle = i,
      .get_size = w_get_size,
      .read = w_read,
      .map = w_map,
      .extents = w_extents,
      .prefetch =
          i->p->prefetch || (below && below->prefetch) ? w_prefetch : NULL,
      .release = w_release,
      .identity = w_identity,
  };
  return 0;
}

void inst_close(struct inst *i) {
  if (i->h && i->p->destroy) i->p->destroy(i->h);
  fakehost_config_free(i->cfg);
  memset(i, 0, sizeof *i);
}

struct sink {
  char buf[65536];
  size_t n;
};

static size_t to_sink(char *p, size_t s, size_t n, void *opaque) {
  struct sink *k = opaque;
  size_t len = s * n, room = sizeof k->buf - 1 - k->n;
  memcpy(k->buf + k->n, p, len < room ? len : room);
  k->n += len < room ? len : room;
  k->buf[k->n] = 0;
  return len;
}

static void get(const char *u, struct sink *k) {
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(c);
  long st = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
  curl_easy_cleanup(c);
  ck_assert_msg(rc == CURLE_OK && st == 200, "GET %s: %s, status %ld", u,
                curl_easy_strerror(rc), st);
}

const char *faulty_data_kv(void) {
  static char kv[600];
  snprintf(kv, sizeof kv, "url=%s", url("FAULTY_URL", "data.bin"));
  return kv;
}

void faulty(const char *query) {
  char u[512];
  struct sink k = {0};
  snprintf(u, sizeof u, "%s/_control?%s", env("FAULTY_URL"), query);
  get(u, &k);
}

const char *server_text(const char *env_name, const char *path) {
  static struct sink k;
  k.n = 0;
  k.buf[0] = 0;
  get(url(env_name, path), &k);
  return k.buf;
}

void faulty_reset(void) {
  struct sink k = {0};
  get(url("FAULTY_URL", "_reset"), &k);
}

void faulty_down(double seconds) {
  char q[64];
  snprintf(q, sizeof q, "mode=down&seconds=%.3f", seconds);
  faulty(q);
  usleep(200000); /* the server closes its listener within 0.1 s */
}

void faulty_wait_up(void) {
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url("FAULTY_URL", "_stats"));
  curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 1L);
  CURLcode rc = CURLE_COULDNT_CONNECT;
  for (int i = 0; i < 100 && rc != CURLE_OK; i++) {
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) usleep(50000);
  }
  curl_easy_cleanup(c);
  ck_assert_msg(rc == CURLE_OK, "faulty_server.py did not come back");
}

long faulty_requests(void) {
  struct sink k = {0};
  get(url("FAULTY_URL", "_stats"), &k);
  const char *p = strstr(k.buf, "\"requests\":");
  ck_assert_msg(p, "bad /_stats answer: %s", k.buf);
  return strtol(p + 11, NULL, 10);
}

static int count_lines(const char *needle) {
  FILE *f = fopen(env("NGINX_LOG"), "r");
  ck_assert_msg(f, "cannot open %s", env("NGINX_LOG"));
  char line[2048];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

int log_count(const char *needle, int want) {
  /* nginx logs a request after sending its answer: ours may be here first. */
  int n = count_lines(needle);
  for (int i = 0; i < 200 && n < want; i++) {
    nanosleep(&(struct timespec){0, 10000000}, NULL);
    n = count_lines(needle);
  }
  return n;
}

int run_suite(Suite *s) {
  char path[1024];
  const char *root = getenv("HTTP_TEST_ROOT");
  if (!root) {
    fputs("HTTP_TEST_ROOT is not set: run this through run-unit.sh\n", stderr);
    return 1;
  }
  snprintf(path, sizeof path, "%s/data.bin", root);
  make_file(path, DATA_SIZE, DATA_SEED);
  return ufk_check_run(s);
}

uint64_t counter_now(const char *name) {
  uint64_t *c = fakehost()->counter(NULL, name, "");
  return __atomic_load_n(c, __ATOMIC_ACQUIRE);
}

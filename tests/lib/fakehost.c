#include "fakehost.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mapped.h"
#include "parse.h"

#define MAX_KV 64
#define MAX_COUNTERS 64

struct ufk_config {
  const struct ufk_param *params;
  int n;
  char *key[MAX_KV];
  char *value[MAX_KV];
};

static char last_error[1024];
static int last_errno;
static fakehost_source_fn source_fn;
static void *source_opaque;
static struct {
  char name[64];
  uint64_t value;
} counters[MAX_COUNTERS];

static void fh_log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[plugin %d] ", level);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void fh_error(int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  last_errno = errnum;
}

static const struct ufk_param *find_param(const struct ufk_param *p,
                                          const char *key) {
  for (; p && p->key; p++)
    if (!strcmp(p->key, key)) return p;
  return NULL;
}

/* The first value of key, else the param's default; NULL if neither. */
static const char *raw(const struct ufk_config *c, const char *key) {
  for (int i = 0; i < c->n; i++)
    if (!strcmp(c->key[i], key)) return c->value[i];
  const struct ufk_param *p = find_param(c->params, key);
  return p ? p->default_value : NULL;
}

static int fh_get_string(const struct ufk_config *c, const char *key,
                         const char **out) {
  const char *v = raw(c, key);
  if (!v) return 1;
  *out = v;
  return 0;
}

#define TYPED_GETTER(fname, type, parser)                                      \
  static int fname(const struct ufk_config *c, const char *key, type *out) {   \
    const char *v = raw(c, key);                                               \
    if (!v) return 1;                                                          \
    if (parser(v, out) < 0) {                                                  \
      fh_error(EINVAL, "%s: bad value '%s'", key, v);                          \
      return -1;                                                               \
    }                                                                          \
    return 0;                                                                  \
  }
TYPED_GETTER(fh_get_int, int64_t, ufk_parse_i64)
TYPED_GETTER(fh_get_bool, int, ufk_parse_bool)
TYPED_GETTER(fh_get_size, uint64_t, ufk_parse_size)
TYPED_GETTER(fh_get_duration, uint64_t, ufk_parse_duration_ns)

static int fh_list_count(const struct ufk_config *c, const char *key) {
  int n = 0;
  for (int i = 0; i < c->n; i++)
    n += !strcmp(c->key[i], key);
  return n;
}

static int fh_list_item(const struct ufk_config *c, const char *key, int index,
                        const char **out) {
  for (int i = 0; i < c->n; i++)
    if (!strcmp(c->key[i], key) && index-- == 0) {
      *out = c->value[i];
      return 0;
    }
  return 1;
}

static const char *fh_where(const struct ufk_config *c, const char *key) {
  (void)c;
  (void)key;
  return "test";
}

static const char *fh_instance_name(const struct ufk_config *c) {
  (void)c;
  return "test/plugin";
}

static struct ufk_next *fh_source_open(const struct ufk_config *c,
                                       const char *key,
                                       const char *const *vars) {
  (void)c;
  if (!source_fn) {
    fh_error(ENOTSUP, "%s: no nested source registered", key);
    return NULL;
  }
  return source_fn(key, vars, source_opaque);
}

static void fh_source_close(struct ufk_next *n) {
  (void)n;
}

static uint64_t *fh_counter(const struct ufk_config *c, const char *name,
                            const char *help) {
  (void)c;
  (void)help;
  for (int i = 0; i < MAX_COUNTERS; i++) {
    if (!counters[i].name[0])
      snprintf(counters[i].name, sizeof counters[i].name, "%s", name);
    if (!strcmp(counters[i].name, name)) return &counters[i].value;
  }
  abort(); /* a test creating more than MAX_COUNTERS counters is broken */
}

static uint64_t fh_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct ufk_host host = {
    .size = sizeof(struct ufk_host),
    .abi_minor = UFK_ABI_MINOR,
    .log = fh_log,
    .error = fh_error,
    .get_string = fh_get_string,
    .get_int = fh_get_int,
    .get_bool = fh_get_bool,
    .get_size = fh_get_size,
    .get_duration_ns = fh_get_duration,
    .get_list_count = fh_list_count,
    .get_list_item = fh_list_item,
    .where = fh_where,
    .instance_name = fh_instance_name,
    .source_open = fh_source_open,
    .source_close = fh_source_close,
    .counter = fh_counter,
    .now_ns = fh_now_ns,
    .copy_mapped = host_copy_mapped, /* the daemon's own */
};

const struct ufk_host *fakehost(void) {
  return &host;
}

/* FAKEHOST_ABI_MINOR=N: the table of a daemon of that minor, so a test
 * can take a plugin down the way it serves an older daemon. */
static void play_minor(void) {
  const char *m = getenv("FAKEHOST_ABI_MINOR");
  if (!m) return;
  host.abi_minor = (uint32_t)atoi(m);
  if (host.abi_minor < 1)
    host.size = offsetof(struct ufk_host, open_file);
  else if (host.abi_minor < 3)
    host.size = offsetof(struct ufk_host, copy_mapped);
}

const struct ufk_plugin *fakehost_load(const char *path) {
  play_minor();
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    fh_error(ENOENT, "%s", dlerror());
    return NULL;
  }
  const struct ufk_plugin *(*entry)(void) =
      (const struct ufk_plugin *(*)(void))dlsym(dl, UFFDKIT_ENTRY_SYMBOL);
  if (!entry) {
    fh_error(ENOENT, "%s: no %s", path, UFFDKIT_ENTRY_SYMBOL);
    return NULL;
  }
  const struct ufk_plugin *p = entry();
  if (p->abi_major != UFK_ABI_MAJOR) {
    fh_error(EINVAL, "%s: ABI major %u", path, p->abi_major);
    return NULL;
  }
  if (p->load && p->load(&host) < 0) return NULL;
  return p;
}

static int check_value(const struct ufk_param *p, const char *v) {
  uint64_t u;
  int64_t i;
  int b;
  switch (p->type) {
  case UFK_T_INT:
    return ufk_parse_i64(v, &i);
  case UFK_T_BOOL:
    return ufk_parse_bool(v, &b);
  case UFK_T_SIZE:
    return ufk_parse_size(v, &u);
  case UFK_T_DURATION:
    return ufk_parse_duration_ns(v, &u);
  default:
    return 0;
  }
}

struct ufk_config *fakehost_config(const struct ufk_param *params,
                                   const char *const *kv) {
  struct ufk_config *c = calloc(1, sizeof *c);
  c->params = params;
  for (; kv && *kv && c->n < MAX_KV; kv++) {
    const char *eq = strchr(*kv, '=');
    char *key = eq ? strndup(*kv, (size_t)(eq - *kv)) : strdup(*kv);
    const struct ufk_param *p = find_param(params, key);
    c->key[c->n] = key;
    c->value[c->n] = strdup(eq ? eq + 1 : "");
    c->n++;
    if (!p || check_value(p, c->value[c->n - 1]) < 0) {
      fh_error(EINVAL, "%s: %s", key, p ? "bad value" : "unknown setting");
      fakehost_config_free(c);
      return NULL;
    }
  }
  for (const struct ufk_param *p = params; p && p->key; p++)
    if ((p->flags & UFK_PARAM_REQUIRED) && !raw(c, p->key)) {
      fh_error(EINVAL, "%s: required", p->key);
      fakehost_config_free(c);
      return NULL;
    }
  return c;
}

void fakehost_config_free(struct ufk_config *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    free(c->key[i]);
    free(c->value[i]);
  }
  free(c);
}

void fakehost_set_source_open(fakehost_source_fn fn, void *opaque) {
  source_fn = fn;
  source_opaque = opaque;
}

const char *fakehost_last_error(void) {
  return last_error;
}

int fakehost_last_errno(void) {
  return last_errno;
}

void fakehost_clear_error(void) {
  last_error[0] = 0;
  last_errno = 0;
}

uint64_t fakehost_counter(const char *name) {
  for (int i = 0; i < MAX_COUNTERS && counters[i].name[0]; i++)
    if (!strcmp(counters[i].name, name)) return counters[i].value;
  return 0;
}

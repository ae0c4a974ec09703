/* Small plugins for the loader tests: one source, built once per variant
 * (TP_<VARIANT> defined by the build), each breaking one rule of the ABI,
 * or none. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <uffdkit/plugin.h>

#define TP_SIZE (1 << 20)
/* Not every variant uses every piece. */
#define TP_FN static __attribute__((unused))

TP_FN const struct ufk_host *host;

TP_FN int tp_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

struct inst {
  struct ufk_next *below;
  int64_t count;
};

TP_FN void *tp_create(const struct ufk_config *cfg, struct ufk_next *below) {
  struct inst *i = calloc(1, sizeof *i);
  i->below = below;
  i->count = 1;
  if (host->get_int(cfg, "count", &i->count) < 0) {
    free(i);
    return NULL;
  }
  if (i->count < 0) {
    host->error(EINVAL, "%s: count must be >= 0", host->where(cfg, "count"));
    free(i);
    return NULL;
  }
  return i;
}

TP_FN void tp_destroy(void *p) {
  free(p);
}

TP_FN int64_t tp_get_size(void *p) {
  struct inst *i = p;
  return i->below ? i->below->get_size(i->below->handle) : TP_SIZE;
}

/* Byte k of the source is (k * 7) & 0xff. */
TP_FN int tp_read(void *p, void *buf, uint64_t len, uint64_t off,
                  uint32_t flags) {
  struct inst *i = p;
  if (i->below) return i->below->read(i->below->handle, buf, len, off, flags);
  for (uint64_t k = 0; k < len; k++)
    ((unsigned char *)buf)[k] = (unsigned char)((off + k) * 7);
  return 0;
}

TP_FN void tp_caps(void *p, struct ufk_caps *c) {
  (void)p;
  c->flags = UFK_PLUGIN_FAST;
}

/* Stored past the struct_size the old variant declares: must never run. */
TP_FN void tp_trap(void *p, struct ufk_caps *c) {
  (void)p;
  (void)c;
  abort();
}

TP_FN const struct ufk_param source_params[] = {
    {"path", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL, "a path"},
    {"count", UFK_T_INT, 0, "1", "an integer, at least 0"},
    {"flag", UFK_T_BOOL, 0, "false", "a boolean"},
    {"bufsize", UFK_T_SIZE, 0, "4K", "a size"},
    {"timeout", UFK_T_DURATION, 0, "1s", "a duration"},
    {"tags", UFK_T_STRING_LIST, 0, NULL, "strings"},
    {"inner", UFK_T_GROUP, 0, NULL, "a group"},
    {NULL, 0, 0, NULL, NULL},
};

TP_FN const struct ufk_param layer_params[] = {
    {"count", UFK_T_INT, 0, "1", "an integer, at least 0"},
    {NULL, 0, 0, NULL, NULL},
};

#define TP_CALLBACKS                                                           \
  .load = tp_load, .create = tp_create, .destroy = tp_destroy,                 \
  .get_size = tp_get_size, .read = tp_read

#if defined(TP_GOOD)
static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,          .name = "tgood", .version = "1",
    .params = source_params, TP_CALLBACKS,    .caps = tp_caps};
#elif defined(TP_LAYER)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI,
                                         .flags = UFK_PLUGIN_LAYER,
                                         .thread_model = UFK_THREAD_PARALLEL,
                                         .name = "tlayer",
                                         .params = layer_params,
                                         TP_CALLBACKS};
#elif defined(TP_OLD)
/* Built against an older minor: its struct ends before caps. */
static const struct ufk_plugin plugin = {.abi_major = UFK_ABI_MAJOR,
                                         .abi_minor = UFK_ABI_MINOR,
                                         .struct_size =
                                             offsetof(struct ufk_plugin, caps),
                                         .name = "told",
                                         .params = source_params,
                                         TP_CALLBACKS,
                                         .caps = tp_trap};
#elif defined(TP_MAJOR)
static const struct ufk_plugin plugin = {.abi_major = UFK_ABI_MAJOR + 1,
                                         .abi_minor = 0,
                                         .struct_size =
                                             sizeof(struct ufk_plugin),
                                         .name = "tmajor",
                                         TP_CALLBACKS};
#elif defined(TP_MINOR)
static const struct ufk_plugin plugin = {.abi_major = UFK_ABI_MAJOR,
                                         .abi_minor = UFK_ABI_MINOR + 1,
                                         .struct_size =
                                             sizeof(struct ufk_plugin),
                                         .name = "tminor",
                                         TP_CALLBACKS};
#elif defined(TP_TINY)
static const struct ufk_plugin plugin = {.abi_major = UFK_ABI_MAJOR,
                                         .abi_minor = UFK_ABI_MINOR,
                                         .struct_size = 16,
                                         .name = "ttiny",
                                         TP_CALLBACKS};
#elif defined(TP_NOREAD)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "tnoread",
                                         .load = tp_load, .create = tp_create,
                                         .get_size = tp_get_size};
#elif defined(TP_NOCREATE)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "tnocreate",
                                         .get_size = tp_get_size,
                                         .read = tp_read};
#elif defined(TP_BADNAME)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "Bad_Name",
                                         TP_CALLBACKS};
#elif defined(TP_THREADS)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .thread_model = 9,
                                         .name = "tthreads", TP_CALLBACKS};
#elif defined(TP_MARKER)
/* Leaves a file where $UFK_TEST_MARKER says as soon as it is loaded, before
 * the loader can look at it: shows whether a file was ever dlopen'ed. */
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void tp_mark(void) {
  const char *m = getenv("UFK_TEST_MARKER");
  int fd = m ? open(m, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) : -1;
  if (fd >= 0) close(fd);
}
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "tmarker",
                                         .params = source_params, TP_CALLBACKS};
#elif defined(TP_CRASH)
/* Kills the worker that starts it: a source that crashes its process. */
#include <signal.h>
#include <unistd.h>
static int tp_crash(void *p) {
  (void)p;
  kill(getpid(), SIGKILL);
  return -1;
}
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "tcrash",
                                         .params = source_params, TP_CALLBACKS,
                                         .start = tp_crash};
#elif defined(TP_HANG)
/* A start that hangs: it waits until the file at `path` exists (at most
 * 10 minutes), then opens it through the host as a source opens its data
 * (pinned), and leaves `path`.closed once destroyed, so a test sees that
 * a start given up on was cleaned up when it ended. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
struct hang {
  char path[4096];
  int fd;
};
static void *th_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct hang *h = calloc(1, sizeof *h);
  const char *path = NULL;
  if (!h || host->get_string(cfg, "path", &path) != 0) {
    free(h);
    return NULL;
  }
  snprintf(h->path, sizeof h->path, "%s", path);
  h->fd = -1;
  return h;
}
static int th_start(void *p) {
  struct hang *h = p;
  for (int i = 0; i < 60000 && access(h->path, F_OK) < 0; i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  h->fd = UFK_HOST_HAS(host, open_file) ? host->open_file(h->path, O_RDONLY)
                                        : open(h->path, O_RDONLY | O_CLOEXEC);
  if (h->fd >= 0) return 0;
  host->error(errno, "%s: cannot open", h->path);
  return -1;
}
static void th_destroy(void *p) {
  struct hang *h = p;
  char mark[4200];
  snprintf(mark, sizeof mark, "%s.closed", h->path);
  if (h->fd >= 0) close(h->fd);
  int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  free(h);
}
static int64_t th_get_size(void *p) {
  (void)p;
  return TP_SIZE;
}
static int th_read(void *p, void *buf, uint64_t len, uint64_t off,
                   uint32_t flags) {
  (void)p;
  (void)flags;
  for (uint64_t k = 0; k < len; k++)
    ((unsigned char *)buf)[k] = (unsigned char)((off + k) * 7);
  return 0;
}
static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,        .name = "thang",         .params = source_params,
    .load = tp_load,       .create = th_create,     .start = th_start,
    .destroy = th_destroy, .get_size = th_get_size, .read = th_read};
#elif defined(TP_NULLENTRY)
/* The entry exists but returns no plugin. */
__attribute__((visibility("default"))) const struct ufk_plugin *
uffdkit_plugin_entry(void);
const struct ufk_plugin *uffdkit_plugin_entry(void) {
  return NULL;
}
#define TP_NO_MACRO
#else
#error "define one TP_<VARIANT>"
#endif

#ifndef TP_NO_MACRO
UFFDKIT_PLUGIN(plugin)
#endif

/* A source built against the older-minor header next to this file, whose
 * struct ufk_plugin ends after prefetch.  It serves a raw memory file with
 * pread(), SERIAL and without FAST, so the daemon reads it from its I/O pool.
 *
 * Right after the structure sit pointers to functions that abort: a daemon
 * copying more than struct_size bytes would take them for caps() and
 * identity() and call them, killing the worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uffdkit/plugin.h>
#include <unistd.h>

_Static_assert(sizeof(struct ufk_plugin) ==
                   offsetof(struct ufk_plugin, prefetch) + sizeof(void *),
               "the older-minor header must end struct ufk_plugin at prefetch");

static const struct ufk_host *host;

struct inst {
  const char *path;
  int fd;
  int64_t size;
  uint64_t *reads;
};

static const struct ufk_param params[] = {
    {"path", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL, "raw memory file"},
    {NULL, 0, 0, NULL, NULL},
};

static int om_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static void *om_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct inst *in = calloc(1, sizeof *in);
  in->fd = -1;
  if (host->get_string(cfg, "path", &in->path) != 0) {
    free(in);
    return NULL;
  }
  in->reads = host->counter(cfg, "old_minor_reads", "reads served");
  return in;
}

static int om_start(void *p) {
  struct inst *in = p;
  struct stat st;
  in->fd = open(in->path, O_RDONLY | O_CLOEXEC);
  if (in->fd < 0 || fstat(in->fd, &st) < 0) {
    host->error(errno, "%s: %s", in->path, strerror(errno));
    return -1;
  }
  in->size = st.st_size;
  return 0;
}

static void om_destroy(void *p) {
  struct inst *in = p;
  if (in->fd >= 0) close(in->fd);
  free(in);
}

static int64_t om_get_size(void *p) {
  return ((struct inst *)p)->size;
}

static int om_read(void *p, void *buf, uint64_t len, uint64_t off,
                   uint32_t flags) {
  struct inst *in = p;
  (void)flags;
  for (uint64_t done = 0; done < len;) {
    ssize_t r =
        pread(in->fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (r <= 0) {
      int e = r < 0 ? errno : EIO;
      host->error(e, "%s: read at %llu: %s", in->path,
                  (unsigned long long)(off + done),
                  r < 0 ? strerror(e) : "end of file");
      return -1;
    }
    done += (uint64_t)r;
  }
  __atomic_fetch_add(in->reads, 1, __ATOMIC_RELAXED);
  return 0;
}

static void caps_past_the_end(void *inst, struct ufk_caps *out) {
  (void)inst;
  (void)out;
  host->log(UFK_LOG_ERROR, "oldminor: caps() called past struct_size");
  abort();
}

static int identity_past_the_end(void *inst, char *buf, size_t len) {
  (void)inst;
  (void)buf;
  (void)len;
  host->log(UFK_LOG_ERROR, "oldminor: identity() called past struct_size");
  abort();
}

/* The plugin structure, then what a newer header would put after it. */
static const struct {
  struct ufk_plugin p;
  void (*caps)(void *, struct ufk_caps *);
  int (*identity)(void *, char *, size_t);
} def = {
    .p =
        {
            UFK_PLUGIN_ABI,
            .flags = 0,
            .thread_model = UFK_THREAD_SERIAL,
            .name = "oldminor",
            .version = "0.9",
            .description = "a source built against an older ABI minor",
            .params = params,
            .load = om_load,
            .create = om_create,
            .start = om_start,
            .destroy = om_destroy,
            .get_size = om_get_size,
            .read = om_read,
        },
    .caps = caps_past_the_end,
    .identity = identity_past_the_end,
};

UFFDKIT_PLUGIN(def.p)

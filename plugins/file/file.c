/* file: reads pages with pread, optionally with O_DIRECT so cold storage
 * is read without filling the page cache. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uffdkit/plugin.h>
#include <unistd.h>

#include "rawfile.h"

static const struct ufk_host *host;

struct inst {
  const char *path;
  int direct;
  int fd;
  struct stat st;
  uint64_t size;
  uint64_t *bytes_read;
};

static const struct ufk_param params[] = {
    {"path", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL,
     "the raw memory file Firecracker wrote (regions concatenated)"},
    {"direct", UFK_T_BOOL, 0, "false",
     "open with O_DIRECT: bypass the page cache (reads then go to a thread "
     "pool, since they wait on the device)"},
    {NULL, 0, 0, NULL, NULL},
};

static int file_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static void *file_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct inst *in = calloc(1, sizeof *in);
  in->fd = -1;
  if (host->get_string(cfg, "path", &in->path) != 0 ||
      host->get_bool(cfg, "direct", &in->direct) < 0) {
    free(in);
    return NULL;
  }
  in->bytes_read = host->counter(cfg, "bytes_read", "bytes read from the file");
  return in;
}

static int file_start(void *p) {
  struct inst *in = p;
  in->fd = ufk_open_raw(host, in->path, O_RDONLY | (in->direct ? O_DIRECT : 0),
                        &in->st);
  if (in->fd < 0) return -1;
  in->size = (uint64_t)in->st.st_size;
  return 0;
}

static void file_destroy(void *p) {
  struct inst *in = p;
  if (in->fd >= 0) close(in->fd);
  free(in);
}

static int64_t file_get_size(void *p) {
  return (int64_t)((struct inst *)p)->size;
}

static int file_read(void *p, void *buf, uint64_t len, uint64_t off,
                     uint32_t flags) {
  struct inst *in = p;
  (void)flags;
  if (ufk_file_read(host, in->fd, in->path, buf, len, off) < 0) return -1;
  __atomic_fetch_add(in->bytes_read, len, __ATOMIC_RELAXED);
  return 0;
}

static int file_extents(void *p, uint64_t off, uint64_t len, ufk_extent_fn fn,
                        void *opaque) {
  struct inst *in = p;
  if (ufk_file_holes(in->fd, off, len, fn, opaque) < 0) {
    host->error(errno, "%s: finding holes: %s", in->path, strerror(errno));
    return -1;
  }
  return 0;
}

static void file_caps(void *p, struct ufk_caps *c) {
  c->flags = ((struct inst *)p)->direct ? 0 : UFK_PLUGIN_FAST;
}

static int file_identity(void *p, char *buf, size_t len) {
  ufk_file_identity(&((struct inst *)p)->st, buf, len);
  return 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = UFK_PLUGIN_FAST,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "file",
    .version = "1.0",
    .description = "reads a raw memory file with pread, optionally O_DIRECT",
    .params = params,
    .load = file_load,
    .create = file_create,
    .start = file_start,
    .destroy = file_destroy,
    .get_size = file_get_size,
    .read = file_read,
    .extents = file_extents,
    .caps = file_caps,
    .identity = file_identity,
};

UFFDKIT_PLUGIN(plugin)

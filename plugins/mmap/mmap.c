/* mmap: serves pages straight from a read-only mapping of a raw
 * Firecracker memory file, with no copy before UFFDIO_COPY. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <uffdkit/plugin.h>
#include <unistd.h>

#include "rawfile.h"

static const struct ufk_host *host;

struct inst {
  const char *path;
  int populate;
  int fd;
  struct stat st;
  uint8_t *base;
  uint64_t size;
};

static const struct ufk_param params[] = {
    {"path", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL,
     "the raw memory file Firecracker wrote (regions concatenated)"},
    {"populate", UFK_T_BOOL, 0, "true",
     "map every page of the file at start, so no fault pays a page-cache "
     "lookup on the source side"},
    {NULL, 0, 0, NULL, NULL},
};

static int mmap_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static void *mmap_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct inst *in = calloc(1, sizeof *in);
  in->fd = -1;
  if (host->get_string(cfg, "path", &in->path) != 0 ||
      host->get_bool(cfg, "populate", &in->populate) < 0) {
    free(in);
    return NULL;
  }
  return in;
}

static int mmap_start(void *p) {
  struct inst *in = p;
  in->fd = ufk_open_raw(host, in->path, O_RDONLY, &in->st);
  if (in->fd < 0) return -1;
  in->size = (uint64_t)in->st.st_size;
  int flags = MAP_PRIVATE | (in->populate ? MAP_POPULATE : 0);
  in->base = mmap(NULL, in->size, PROT_READ, flags, in->fd, 0);
  if (in->base == MAP_FAILED) {
    in->base = NULL;
    host->error(errno, "%s: mmap: %s", in->path, strerror(errno));
    return -1;
  }
  return 0;
}

static void mmap_destroy(void *p) {
  struct inst *in = p;
  if (in->base) munmap(in->base, in->size);
  if (in->fd >= 0) close(in->fd);
  free(in);
}

static int64_t mmap_get_size(void *p) {
  return (int64_t)((struct inst *)p)->size;
}

static int mmap_read(void *p, void *buf, uint64_t len, uint64_t off,
                     uint32_t flags) {
  struct inst *in = p;
  (void)flags;
  /* Not memcpy from the mapping: a layer above reads through here, and a
   * truncated file must fail this read, not kill the worker.  map() stays
   * zero-copy: the kernel's UFFDIO_COPY reports EFAULT instead. */
  return ufk_file_read(host, in->fd, in->path, buf, len, off);
}

static const void *mmap_map(void *p, uint64_t off, uint64_t len) {
  (void)len;
  return ((struct inst *)p)->base + off;
}

static int mmap_extents(void *p, uint64_t off, uint64_t len, ufk_extent_fn fn,
                        void *opaque) {
  struct inst *in = p;
  if (ufk_file_holes(in->fd, off, len, fn, opaque) < 0) {
    host->error(errno, "%s: finding holes: %s", in->path, strerror(errno));
    return -1;
  }
  return 0;
}

static int mmap_identity(void *p, char *buf, size_t len) {
  ufk_file_identity(&((struct inst *)p)->st, buf, len);
  return 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = UFK_PLUGIN_FAST,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "mmap",
    .version = "1.0",
    .description = "serves a raw memory file from a read-only mapping",
    .params = params,
    .load = mmap_load,
    .create = mmap_create,
    .start = mmap_start,
    .destroy = mmap_destroy,
    .get_size = mmap_get_size,
    .read = mmap_read,
    .map = mmap_map,
    .extents = mmap_extents,
    .identity = mmap_identity,
};

UFFDKIT_PLUGIN(plugin)

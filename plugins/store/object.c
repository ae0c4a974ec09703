/* The objects of a store, read from a local folder or through a nested
 * source opened once per object with {object} set to its name.  A local
 * object is mapped when the daemon can copy out of a mapping safely
 * (host->copy_mapped): a chunk is then read with a copy from the page
 * cache, not a pread(2) per read, and a file truncated under the mapping
 * is still an error, not a SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "layer.h"
#include "rawfile.h"

static int open_local(struct store *s, struct object *o) {
  if (asprintf(&o->shown, "%s/%s", s->path, o->name) < 0) {
    o->shown = NULL;
    return ufk_fail(host, ENOMEM, "out of memory");
  }
  o->fd = ufk_open_data(host, o->shown, O_RDONLY);
  struct stat st;
  if (o->fd < 0 || fstat(o->fd, &st) < 0)
    return ufk_fail(host, errno, "%s: cannot open: %s", o->shown,
                    strerror(errno));
  o->size = (uint64_t)st.st_size;
  if (o->size && UFK_HOST_HAS(host, copy_mapped)) {
    void *m = mmap(NULL, (size_t)o->size, PROT_READ, MAP_SHARED, o->fd, 0);
    o->map = m == MAP_FAILED ? NULL : m; /* else read with pread */
  }
  return 0;
}

static int open_nested(struct store *s, struct object *o) {
  if (asprintf(&o->shown, "objects:%s", o->name) < 0) {
    o->shown = NULL;
    return ufk_fail(host, ENOMEM, "out of memory");
  }
  o->src = host->source_open(s->cfg, "objects",
                             (const char *const[]){"object", o->name, NULL});
  if (!o->src) return -1; /* the nested source said why */
  int64_t n = o->src->get_size(o->src->handle);
  if (n < 0) return ufk_fail(host, EIO, "%s: cannot get its size", o->shown);
  o->size = (uint64_t)n;
  return 0;
}

int obj_open(struct store *s, struct object *o, const char *name) {
  memset(o, 0, sizeof *o);
  o->fd = -1;
  if (!(o->name = strdup(name))) return ufk_fail(host, ENOMEM, "out of memory");
  return s->path ? open_local(s, o) : open_nested(s, o);
}

int obj_read(struct object *o, void *buf, uint64_t len, uint64_t off,
             uint32_t flags) {
  if (off > o->size || len > o->size - off)
    return ufk_fail(host, EIO,
                    "%s: %llu bytes at %llu are past its end (%llu bytes)",
                    o->shown, (unsigned long long)len, (unsigned long long)off,
                    (unsigned long long)o->size);
  if (o->map && host->copy_mapped(buf, o->map + off, len) < 0)
    return ufk_fail(host, EIO,
                    "%s: %llu bytes at %llu cannot be read: the file is "
                    "shorter than its %llu bytes when opened, or its storage "
                    "failed",
                    o->shown, (unsigned long long)len, (unsigned long long)off,
                    (unsigned long long)o->size);
  if (o->map) return 0;
  if (o->fd >= 0) return ufk_file_read(host, o->fd, o->shown, buf, len, off);
  if (o->src->read(o->src->handle, buf, len, off, flags) == 0) return 0;
  int e = errno ? errno : EIO;
  errno = e; /* the nested source reported its message */
  return -1;
}

void obj_close(struct object *o) {
  if (o->map) munmap((void *)o->map, (size_t)o->size);
  if (o->fd >= 0) close(o->fd);
  if (o->src) host->source_close(o->src);
  free(o->name);
  free(o->shown);
  memset(o, 0, sizeof *o);
  o->fd = -1;
}

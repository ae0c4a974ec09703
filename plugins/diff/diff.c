/* diff: serves a snapshot generation through its flattened header.
 *
 * The header maps every range of guest memory to one build's diff file or to
 * zeros.  Diff files are local files (a path template) mapped read-only, or
 * come from a nested source opened once per build (e.g. http).  Builds that
 * a V4/V5 header describes as compressed are read frame by frame from
 * memfile.zstd / memfile.lz4; each frame is decoded whole, its codec
 * checksum checked, before any byte of it is served (compressed.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uffdkit/plugin.h>

#include "diff.h"
#include "rawfile.h"

const struct ufk_host *host;

static const struct ufk_param params[] = {
    {"header", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL,
     "the generation's header file (memfile.header)"},
    {"diffs", UFK_T_STRING, 0, NULL,
     "path of each build's diff file, with {build_id} for the build id"},
    {"store", UFK_T_GROUP, 0, NULL,
     "a source to read each build's diff from, with {build_id} in its "
     "settings (instead of diffs), and {suffix} after the file name for "
     "compressed builds and their headers"},
    {"frame_cache", UFK_T_SIZE, 0, "64M",
     "bytes of decoded frames of compressed builds kept in memory"},
    {0},
};

static int diff_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

/* A group has no getter; any answer but "absent" means it is set. */
static int has_key(const struct ufk_config *cfg, const char *key) {
  const char *s;
  return host->get_string(cfg, key, &s) != 1;
}

static int check_template(struct diff *d) {
  if (strstr(d->diffs, UFK_SNAP_BUILD_ID_VAR)) return 0;
  host->error(EINVAL, "diffs (%s): '%s' does not contain %s",
              host->where(d->cfg, "diffs"), d->diffs, UFK_SNAP_BUILD_ID_VAR);
  return -1;
}

static int read_settings(struct diff *d) {
  const struct ufk_config *cfg = d->cfg;
  if (host->get_string(cfg, "header", &d->header_path) != 0) {
    host->error(EINVAL, "header: required (the memfile.header to serve)");
    return -1;
  }
  int rc = host->get_string(cfg, "diffs", &d->diffs);
  if (rc < 0) return -1;
  int store = has_key(cfg, "store");
  if (rc == 0 && store) {
    host->error(EINVAL, "diffs (%s) and store (%s): set only one of them",
                host->where(cfg, "diffs"), host->where(cfg, "store"));
    return -1;
  }
  if (rc == 1 && !store) {
    host->error(EINVAL, "set diffs (a path with %s) or store (a source)",
                UFK_SNAP_BUILD_ID_VAR);
    return -1;
  }
  if (rc == 1) d->diffs = NULL;
  if (host->get_size(cfg, "frame_cache", &d->frame_cache) != 0) {
    host->error(EINVAL, "frame_cache (%s): not a size",
                host->where(cfg, "frame_cache"));
    return -1;
  }
  return d->diffs ? check_template(d) : 0;
}

static void *diff_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct diff *d = calloc(1, sizeof *d);
  if (!d) {
    host->error(ENOMEM, "out of memory");
    return NULL;
  }
  d->cfg = cfg;
  if (read_settings(d) < 0) {
    free(d);
    return NULL;
  }
  d->bytes_read =
      host->counter(cfg, "bytes_read",
                    "bytes served from the builds' diff files, read or mapped");
  d->bytes_zero =
      host->counter(cfg, "bytes_zero", "bytes of zero ranges filled by read");
  d->reads = host->counter(cfg, "reads", "read and map calls served");
  d->cache.decoded = host->counter(
      cfg, "frames_decoded", "frames of compressed builds decoded and checked");
  d->cache.hits = host->counter(cfg, "frame_cache_hits",
                                "reads served from an already decoded frame");
  return d;
}

static int open_local(struct diff *d, struct build *b) {
  int fd = ufk_open_data(host, b->file, O_RDONLY);
  if (fd < 0) {
    int e = errno;
    char id[UFK_SNAP_UUID_STR];
    ufk_snap_id_str(b->info.id, id);
    host->error(e,
                "%s: cannot open the diff of build %s (used from mapping "
                "%zu of %s): %s",
                b->file, id, b->info.first_entry, d->header_path, strerror(e));
    return -1;
  }
  struct stat st;
  struct ufk_snap_err err;
  if (fstat(fd, &st) < 0 ||
      ufk_snap_check_build_size(&d->h, &b->info, (uint64_t)st.st_size,
                                d->header_path, b->file, &err) < 0) {
    host->error(EINVAL, "%s", err.msg);
    close(fd);
    return -1;
  }
  b->map_len = (size_t)b->info.need;
  /* Not populated: starting would then read and map the whole diff, so a
   * serve would take as long as the file is big, and every per-restore
   * listener of one build would hold page tables for all of it while no
   * VM uses it.  A fault maps its pages (and their neighbours) on use. */
  void *p = mmap(NULL, b->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  b->fd = fd;
  if (p == MAP_FAILED) {
    host->error(e, "%s: cannot map %zu bytes: %s", b->file, b->map_len,
                strerror(e));
    return -1;
  }
  b->map = p;
  return 0;
}

struct ufk_next *diff_store_open(struct diff *d, const uint8_t id[16],
                                 const char *suffix) {
  char ids[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(id, ids);
  return host->source_open(
      d->cfg, "store",
      (const char *const[]){"build_id", ids, "suffix", suffix, NULL});
}

static int open_store(struct diff *d, struct build *b) {
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(b->info.id, id);
  if (!b->src) b->src = diff_store_open(d, b->info.id, "");
  if (!b->src) return -1;
  int64_t have = b->src->get_size(b->src->handle);
  if (have < 0) {
    host->error(EIO, "%s: cannot get the size of the diff of build %s", b->file,
                id);
    return -1;
  }
  struct ufk_snap_err err;
  if (ufk_snap_check_build_size(&d->h, &b->info, (uint64_t)have, d->header_path,
                                b->file, &err) < 0) {
    host->error(EINVAL, "%s", err.msg);
    return -1;
  }
  return 0;
}

char *diff_object_name(struct diff *d, const uint8_t id[16],
                       const char *suffix) {
  char *base = NULL, *out = NULL;
  if (d->diffs) {
    base = ufk_snap_expand(d->diffs, id);
  } else {
    char ids[UFK_SNAP_UUID_STR];
    ufk_snap_id_str(id, ids);
    if (asprintf(&base, "store:%s", ids) < 0) base = NULL;
  }
  if (base && asprintf(&out, "%s%s", base, suffix) < 0) out = NULL;
  free(base);
  if (!out) host->error(ENOMEM, "out of memory");
  return out;
}

static int open_build(struct diff *d, struct build *b) {
  if (diff_resolve(d, b) < 0) return -1;
  if (ufk_snap_compressed(&b->entry)) return diff_open_compressed(d, b);
  if (!(b->file = diff_object_name(d, b->info.id, ""))) return -1;
  return d->diffs ? open_local(d, b) : open_store(d, b);
}

static int index_builds(struct diff *d) {
  struct ufk_snap_build *info;
  if (ufk_snap_builds(&d->h, &info, &d->nbuilds) < 0) return -1;
  d->builds = calloc(d->nbuilds ? d->nbuilds : 1, sizeof *d->builds);
  d->build_of = calloc(d->h.nmappings, sizeof *d->build_of);
  if (!d->builds || !d->build_of) {
    free(info);
    return -1;
  }
  for (size_t i = 0; i < d->nbuilds; i++) {
    d->builds[i].info = info[i];
    d->builds[i].fd = -1;
  }
  ufk_snap_build_index(&d->h, info, d->nbuilds, d->build_of);
  free(info);
  return 0;
}

static int diff_start(void *inst) {
  struct diff *d = inst;
  struct ufk_snap_err err;
  int fd = ufk_open_data(host, d->header_path, O_RDONLY);
  if (fd < 0) {
    host->error(errno, "%s: cannot open: %s", d->header_path, strerror(errno));
    return -1;
  }
  int rc = ufk_snap_load_fd(fd, d->header_path, &d->h, &err);
  close(fd);
  if (rc < 0) {
    host->error(EINVAL, "%s", err.msg);
    return -1;
  }
  if (index_builds(d) < 0) {
    host->error(ENOMEM, "%s: out of memory indexing %zu mappings",
                d->header_path, d->h.nmappings);
    return -1;
  }
  for (size_t i = 0; i < d->nbuilds; i++)
    if (open_build(d, &d->builds[i]) < 0) return -1;
  if (diff_cache_start(d) < 0) return -1;
  host->log(UFK_LOG_INFO,
            "%s: generation %llu, %llu bytes, %zu mappings over %zu builds",
            d->header_path, (unsigned long long)d->h.generation,
            (unsigned long long)d->h.size, d->h.nmappings, d->nbuilds);
  return 0;
}

static void diff_destroy(void *inst) {
  struct diff *d = inst;
  for (size_t i = 0; i < d->nbuilds; i++) {
    struct build *b = &d->builds[i];
    if (b->map) munmap((void *)b->map, b->map_len);
    if (b->fd >= 0) close(b->fd);
    if (b->src) host->source_close(b->src);
    free(b->file);
    ufk_snap_entry_free(&b->entry);
  }
  fcache_free(&d->cache);
  free(d->builds);
  free(d->build_of);
  ufk_snap_free(&d->h);
  free(d);
}

static int64_t diff_get_size(void *inst) {
  struct diff *d = inst;
  return (int64_t)d->h.size;
}

static int out_of_range(struct diff *d, uint64_t off, uint64_t len) {
  if (off < d->h.size && len <= d->h.size - off) return 0;
  host->error(ERANGE, "%s: range 0x%llx+0x%llx is outside the size 0x%llx",
              d->header_path, (unsigned long long)off, (unsigned long long)len,
              (unsigned long long)d->h.size);
  return -1;
}

/* Copies n bytes of mapping i, starting `shift` bytes into it. */
static int copy_part(struct diff *d, size_t i, uint64_t shift, uint8_t *buf,
                     uint64_t n, uint32_t flags) {
  const struct ufk_snap_mapping *m = &d->h.mappings[i];
  if (d->build_of[i] == UFK_SNAP_NO_BUILD) {
    memset(buf, 0, n);
    __atomic_fetch_add(d->bytes_zero, n, __ATOMIC_RELAXED);
    return 0;
  }
  struct build *b = &d->builds[d->build_of[i]];
  uint64_t at = m->storage_offset + shift;
  if (b->compressed) {
    if (diff_read_frames(d, b, buf, n, at, flags) < 0) return -1;
  } else if (b->map ? ufk_file_read(host, b->fd, b->file, buf, n, at) < 0
                    : b->src->read(b->src->handle, buf, n, at, flags) < 0)
    return -1;
  __atomic_fetch_add(d->bytes_read, n, __ATOMIC_RELAXED);
  return 0;
}

/* A read may span many mappings (a 2 MiB page over 4 KiB blocks). */
static int diff_read(void *inst, void *buf, uint64_t len, uint64_t off,
                     uint32_t flags) {
  struct diff *d = inst;
  if (len == 0) return 0;
  if (out_of_range(d, off, len) < 0) return -1;
  __atomic_fetch_add(d->reads, 1, __ATOMIC_RELAXED);
  uint8_t *p = buf;
  for (size_t i = (size_t)ufk_snap_find(&d->h, off); len > 0; i++) {
    const struct ufk_snap_mapping *m = &d->h.mappings[i];
    uint64_t shift = off - m->offset;
    uint64_t n = m->length - shift < len ? m->length - shift : len;
    if (copy_part(d, i, shift, p, n, flags) < 0) return -1;
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

static const void *diff_map(void *inst, uint64_t off, uint64_t len) {
  struct diff *d = inst;
  if (len == 0 || off >= d->h.size || len > d->h.size - off) return NULL;
  size_t i = (size_t)ufk_snap_find(&d->h, off);
  const struct ufk_snap_mapping *m = &d->h.mappings[i];
  if (d->build_of[i] == UFK_SNAP_NO_BUILD || off + len > m->offset + m->length)
    return NULL;
  const struct build *b = &d->builds[d->build_of[i]];
  if (!b->map) return NULL;
  __atomic_fetch_add(d->reads, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(d->bytes_read, len, __ATOMIC_RELAXED);
  return b->map + m->storage_offset + (off - m->offset);
}

/* Zero ranges, joined across neighbouring nil mappings. */
static int diff_extents(void *inst, uint64_t off, uint64_t len,
                        ufk_extent_fn fn, void *opaque) {
  struct diff *d = inst;
  if (len == 0 || off >= d->h.size) return 0;
  uint64_t end = len > d->h.size - off ? d->h.size : off + len;
  uint64_t zstart = 0, zend = 0;
  for (size_t i = (size_t)ufk_snap_find(&d->h, off);
       i < d->h.nmappings && d->h.mappings[i].offset < end; i++) {
    const struct ufk_snap_mapping *m = &d->h.mappings[i];
    if (d->build_of[i] != UFK_SNAP_NO_BUILD) continue;
    uint64_t s = m->offset > off ? m->offset : off;
    uint64_t e = m->offset + m->length < end ? m->offset + m->length : end;
    if (zend != s && zend > zstart &&
        fn(opaque, zstart, zend - zstart, UFK_EXTENT_ZERO) < 0)
      return -1;
    if (zend != s) zstart = s;
    zend = e;
  }
  if (zend > zstart && fn(opaque, zstart, zend - zstart, UFK_EXTENT_ZERO) < 0)
    return -1;
  return 0;
}

static void diff_caps(void *inst, struct ufk_caps *out) {
  struct diff *d = inst;
  /* Decoding a frame is not a page-cache copy. */
  out->flags = d->diffs && !d->any_compressed ? UFK_PLUGIN_FAST : 0;
  out->max_concurrency = 0;
  out->max_io = 0;
}

/* Builds never change once written, so the build id names the bytes. */
static int diff_identity(void *inst, char *buf, size_t len) {
  struct diff *d = inst;
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(d->h.build_id, id);
  int n = snprintf(buf, len, "diff build %s generation %llu size %llu", id,
                   (unsigned long long)d->h.generation,
                   (unsigned long long)d->h.size);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = 0,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "diff",
    .version = "1.1",
    .description = "a snapshot generation: a memfile.header over the diff "
                   "files of its builds",
    .params = params,
    .load = diff_load,
    .create = diff_create,
    .start = diff_start,
    .destroy = diff_destroy,
    .get_size = diff_get_size,
    .read = diff_read,
    .map = diff_map,
    .extents = diff_extents,
    .caps = diff_caps,
    .identity = diff_identity,
};

UFFDKIT_PLUGIN(plugin)

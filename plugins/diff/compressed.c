/* Compressed builds of V4/V5 headers: which entry a build is read with,
 * memfile.zstd / memfile.lz4 opened and checked against its frame table,
 * and reads that decode whole frames (through the frame cache) before a
 * byte of them is copied out.
 *
 * The per-build SHA-256 of a header covers a build's whole uncompressed
 * diff, so it can be checked only once every frame was read: faults read
 * single frames, so here each frame's codec checksum (zstd content
 * checksum, lz4 block checksums) vouches for its bytes, as in E2B;
 * uffdkit-snap verify checks the SHA-256. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diff.h"
#include "layer.h"
#include "rawfile.h"

#define fail(...) ufk_fail(host, __VA_ARGS__)

/* Reads the whole object of a nested source. */
static int read_store_header(struct ufk_next *src, const char *name,
                             struct ufk_snap_header *own,
                             struct ufk_snap_err *err) {
  int64_t size = src->get_size(src->handle);
  if (size < 0 || (uint64_t)size > UFK_SNAP_INNER_MAX + (2u << 20))
    return ufk_snap_fail(err, "%s: cannot get a header's size (%lld)", name,
                         (long long)size);
  uint8_t *buf = malloc(size ? (size_t)size : 1);
  if (!buf) return ufk_snap_fail(err, "%s: out of memory", name);
  int rc = src->read(src->handle, buf, (uint64_t)size, 0, 0);
  if (rc < 0)
    ufk_snap_fail(err, "%s: cannot read %lld bytes", name, (long long)size);
  else
    rc = ufk_snap_parse(buf, (size_t)size, name, own, err);
  free(buf);
  return rc;
}

/* The build's own memfile.header: 1 when there is none. */
static int own_header(void *opaque, const uint8_t id[16],
                      struct ufk_snap_header *own, struct ufk_snap_err *err) {
  struct diff *d = opaque;
  char *name = diff_object_name(d, id, ".header");
  if (!name) return ufk_snap_fail(err, "out of memory");
  int rc;
  if (d->diffs) {
    int fd = ufk_open_data(host, name, O_RDONLY);
    if (fd < 0)
      rc = errno == ENOENT ? 1
                           : ufk_snap_fail(err, "%s: cannot open: %s", name,
                                           strerror(errno));
    else
      rc = ufk_snap_load_fd(fd, name, own, err), close(fd);
  } else {
    struct ufk_next *src = diff_store_open(d, id, ".header");
    rc = src ? read_store_header(src, name, own, err) : 1;
    if (src) host->source_close(src);
  }
  free(name);
  return rc;
}

/* A build read as uncompressed whose memfile does not exist: locally, or
 * through the store when opening it reports ENOENT (an http 404); any other
 * failure is not taken for absence (open_store reports it).  An object
 * opened here is kept for open_store. */
static int proves_false(struct diff *d, struct build *b) {
  if (ufk_snap_format(&d->h) < 4 || b->compressed) return 0;
  if (!d->diffs) {
    b->src = diff_store_open(d, b->info.id, "");
    return !b->src && errno == ENOENT;
  }
  char *name = diff_object_name(d, b->info.id, "");
  int gone = name && access(name, F_OK) < 0 && errno == ENOENT;
  free(name);
  return gone;
}

int diff_resolve(struct diff *d, struct build *b) {
  struct ufk_snap_err err;
  if (ufk_snap_resolve(&d->h, b->info.id, own_header, d, d->header_path,
                       &b->entry, &err) < 0)
    return fail(EINVAL, "%s", err.msg);
  b->compressed = ufk_snap_compressed(&b->entry);
  if (proves_false(d, b)) {
    ufk_snap_entry_free(&b->entry);
    if (ufk_snap_rescue(&d->h, b->info.id, own_header, d, d->header_path,
                        &b->entry, &err) < 0)
      return fail(ENOENT, "%s", err.msg);
  }
  b->compressed = ufk_snap_compressed(&b->entry);
  d->any_compressed |= b->compressed;
  return 0;
}

static int64_t object_size(struct diff *d, struct build *b) {
  if (!d->diffs) {
    b->src =
        diff_store_open(d, b->info.id, ufk_snap_codec_suffix(b->entry.codec));
    return b->src ? b->src->get_size(b->src->handle) : -1;
  }
  struct stat st;
  b->fd = ufk_open_data(host, b->file, O_RDONLY);
  if (b->fd < 0 || fstat(b->fd, &st) < 0) {
    int e = errno;
    char id[UFK_SNAP_UUID_STR];
    ufk_snap_id_str(b->info.id, id);
    fail(e, "%s: cannot open the %s frames of build %s: %s", b->file,
         ufk_snap_codec_name(b->entry.codec), id, strerror(e));
    return -1;
  }
  return st.st_size;
}

int diff_open_compressed(struct diff *d, struct build *b) {
  const struct ufk_snap_entry *e = &b->entry;
  if (!(b->file =
            diff_object_name(d, b->info.id, ufk_snap_codec_suffix(e->codec))))
    return -1;
  int64_t have = object_size(d, b);
  if (have < 0) return -1;
  const struct ufk_snap_frame *last = &e->frames[e->nframes - 1];
  uint64_t need = last->start_c + last->size_c;
  if ((uint64_t)have >= need) return 0;
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(b->info.id, id);
  return fail(EINVAL,
              "%s: %lld bytes, too short for the frames of build %s in %s: "
              "frame %zu ends at byte %llu",
              b->file, (long long)have, id, d->header_path, e->nframes - 1,
              (unsigned long long)need);
}

int diff_cache_start(struct diff *d) {
  uint32_t most = 0;
  for (size_t i = 0; i < d->nbuilds; i++)
    for (size_t k = 0;
         d->builds[i].compressed && k < d->builds[i].entry.nframes; k++)
      if (d->builds[i].entry.frames[k].size_u > most)
        most = d->builds[i].entry.frames[k].size_u;
  if (!most) return 0;
  if (fcache_init(&d->cache, d->frame_cache, most) < 0)
    return fail(ENOMEM, "out of memory for the frame cache");
  return 0;
}

struct job {
  struct build *b;
  size_t k;
  uint32_t flags;
};

static int read_c(struct build *b, const struct ufk_snap_frame *f, uint8_t *c,
                  uint32_t flags) {
  if (b->src)
    return b->src->read(b->src->handle, c, f->size_c, f->start_c, flags);
  return ufk_file_read(host, b->fd, b->file, c, f->size_c, f->start_c);
}

/* Reads one frame's compressed bytes and decodes them whole into dst. */
static int decode_job(void *opaque, uint8_t *dst) {
  struct job *j = opaque;
  const struct ufk_snap_frame *f = &j->b->entry.frames[j->k];
  uint8_t *c = malloc(f->size_c);
  if (!c) return fail(ENOMEM, "out of memory for a %u-byte frame", f->size_c);
  char why[160];
  int rc = read_c(j->b, f, c, j->flags);
  if (rc == 0 && ufk_snap_decode_frame(j->b->entry.codec, c, f->size_c, dst,
                                       f->size_u, why, sizeof why) < 0) {
    char id[UFK_SNAP_UUID_STR];
    ufk_snap_id_str(j->b->info.id, id);
    rc = fail(EBADMSG,
              "%s: frame %zu of build %s (bytes %llu to %llu, diff bytes "
              "0x%llx+0x%x) refused: %s",
              j->b->file, j->k, id, (unsigned long long)f->start_c,
              (unsigned long long)(f->start_c + f->size_c),
              (unsigned long long)f->start_u, f->size_u, why);
  }
  free(c);
  return rc;
}

int diff_read_frames(struct diff *d, struct build *b, uint8_t *buf, uint64_t n,
                     uint64_t at, uint32_t flags) {
  while (n > 0) {
    long k = ufk_snap_frame_find(&b->entry, at);
    if (k < 0) /* start() checked every mapping is held by frames */
      return fail(EIO, "%s: byte 0x%llx of the diff is in no frame", b->file,
                  (unsigned long long)at);
    const struct ufk_snap_frame *f = &b->entry.frames[k];
    uint64_t off = at - f->start_u;
    uint64_t take = f->size_u - off < n ? f->size_u - off : n;
    struct job j = {b, (size_t)k, flags};
    long s = fcache_get(&d->cache, b, (uint64_t)k, decode_job, &j);
    if (s < 0) return -1;
    memcpy(buf, d->cache.slots[s].buf + off, take);
    fcache_put(&d->cache, s);
    buf += take;
    at += take;
    n -= take;
  }
  return 0;
}

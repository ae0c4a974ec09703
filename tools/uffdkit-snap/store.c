#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "e2b.h"

static int make_store(struct snap_out *o, const char *store) {
  if (mkdir(store, 0755) == 0) {
    o->made_store = 1;
    return 0;
  }
  struct stat st;
  if (errno == EEXIST && stat(store, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  snap_error("%s: cannot create the store folder: %s", store,
             errno == EEXIST ? "exists and is not a folder" : strerror(errno));
  return -1;
}

int out_begin(struct snap_out *o, const char *store) {
  memset(o, 0, sizeof *o);
  o->fd = -1;
  uuid_generate_random(o->id);
  ufk_snap_id_str(o->id, o->ids);
  if (!(o->store = strdup(store)) || make_store(o, store) < 0) return -1;
  char tmpname[64];
  snprintf(tmpname, sizeof tmpname, ".tmp-%s", o->ids);
  if (!(o->tmpdir = snap_path(store, tmpname, NULL))) return -1;
  if (mkdir(o->tmpdir, 0755) < 0) {
    snap_error("%s: cannot create: %s", o->tmpdir, strerror(errno));
    free(o->tmpdir);
    o->tmpdir = NULL;
    return -1;
  }
  if (!(o->memfile = snap_path(o->tmpdir, SNAP_MEMFILE, NULL))) return -1;
  o->fd = open(o->memfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (o->fd < 0) {
    snap_error("%s: cannot create: %s", o->memfile, strerror(errno));
    return -1;
  }
  return 0;
}

int out_block(struct snap_out *o, const void *buf, size_t len) {
  if (snap_write(o->fd, buf, len, o->memfile) < 0) return -1;
  o->written += len;
  return 0;
}

static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0) {
    snap_error("%s: cannot sync the folder: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

static int write_header(struct snap_out *o, const struct ufk_snap_header *h) {
  char *path = snap_path(o->tmpdir, SNAP_HEADER, NULL);
  if (!path) return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  struct ufk_snap_err err;
  int rc = -1;
  if (fd < 0)
    snap_error("%s: cannot create: %s", path, strerror(errno));
  else if (ufk_snap_write_fd(h, fd, path, &err) < 0)
    snap_error("%s", err.msg);
  else if (fsync(fd) < 0)
    snap_error("%s: cannot sync: %s", path, strerror(errno));
  else
    rc = 0;
  if (fd >= 0) close(fd);
  free(path);
  return rc;
}

int out_commit(struct snap_out *o, const struct ufk_snap_header *h) {
  if (fsync(o->fd) < 0) {
    snap_error("%s: cannot sync: %s", o->memfile, strerror(errno));
    return -1;
  }
  if (write_header(o, h) < 0 || sync_dir(o->tmpdir) < 0) return -1;
  char *final = snap_path(o->store, o->ids, NULL);
  if (!final) return -1;
  int rc = rename(o->tmpdir, final);
  if (rc < 0)
    snap_error("%s: cannot rename to %s: %s", o->tmpdir, final,
               strerror(errno));
  free(final);
  if (rc < 0 || sync_dir(o->store) < 0) return -1;
  close(o->fd);
  free(o->tmpdir);
  free(o->memfile);
  free(o->store);
  memset(o, 0, sizeof *o);
  o->fd = -1;
  return 0;
}

void out_abort(struct snap_out *o) {
  if (o->fd >= 0) close(o->fd);
  if (o->tmpdir) {
    char *hdr = snap_path(o->tmpdir, SNAP_HEADER, NULL);
    if (hdr) unlink(hdr);
    free(hdr);
    if (o->memfile) unlink(o->memfile);
    rmdir(o->tmpdir);
  }
  if (o->made_store) rmdir(o->store);
  free(o->tmpdir);
  free(o->memfile);
  free(o->store);
  memset(o, 0, sizeof *o);
  o->fd = -1;
}

static int open_build(struct snap_image *im, const char *store, size_t i) {
  const struct ufk_snap_build *b = &im->builds[i];
  char ids[UFK_SNAP_UUID_STR];
  int compressed = e2b_open_build(im, store, i);
  if (compressed <= 0) return compressed;
  ufk_snap_id_str(b->id, ids);
  if (!(im->files[i] = snap_path(store, ids, SNAP_MEMFILE))) return -1;
  im->fds[i] = open(im->files[i], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (im->fds[i] < 0 || fstat(im->fds[i], &st) < 0) {
    snap_error("%s: cannot open the diff of build %s (used from mapping %zu "
               "of %s): %s",
               im->files[i], ids, b->first_entry, im->header_path,
               strerror(errno));
    return -1;
  }
  struct ufk_snap_err err;
  if (ufk_snap_check_build_size(&im->h, b, (uint64_t)st.st_size,
                                im->header_path, im->files[i], &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  return 0;
}

static int alloc_tables(struct snap_image *im) {
  size_t nb = im->nbuilds ? im->nbuilds : 1;
  im->fds = malloc(nb * sizeof *im->fds);
  im->files = calloc(nb, sizeof *im->files);
  im->build_of = malloc(im->h.nmappings * sizeof *im->build_of);
  if (!im->fds || !im->files || !im->build_of) {
    snap_error("%s: out of memory for %zu mappings", im->header_path,
               im->h.nmappings);
    return -1;
  }
  for (size_t i = 0; i < im->nbuilds; i++)
    im->fds[i] = -1;
  ufk_snap_build_index(&im->h, im->builds, im->nbuilds, im->build_of);
  return 0;
}

int image_open(struct snap_image *im, const char *store, const char *build) {
  memset(im, 0, sizeof *im);
  uint8_t id[16];
  struct ufk_snap_err err;
  if (snap_parse_id(build, id) < 0 ||
      !(im->header_path = snap_path(store, build, SNAP_HEADER)))
    return -1;
  if (ufk_snap_load(im->header_path, &im->h, &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  if (ufk_snap_builds(&im->h, &im->builds, &im->nbuilds) < 0) {
    snap_error("%s: out of memory", im->header_path);
    return -1;
  }
  if (alloc_tables(im) < 0) return -1;
  for (size_t i = 0; i < im->nbuilds; i++)
    if (open_build(im, store, i) < 0) return -1;
  return 0;
}

int image_read(struct snap_image *im, void *buf, uint64_t len, uint64_t off) {
  uint8_t *p = buf;
  long i = ufk_snap_find(&im->h, off);
  if (i < 0 || len > im->h.size - off) {
    snap_error("%s: range 0x%llx+0x%llx is outside the size 0x%llx",
               im->header_path, (unsigned long long)off,
               (unsigned long long)len, (unsigned long long)im->h.size);
    return -1;
  }
  for (; len > 0; i++) {
    const struct ufk_snap_mapping *m = &im->h.mappings[i];
    uint64_t shift = off - m->offset;
    uint64_t n = m->length - shift < len ? m->length - shift : len;
    uint32_t b = im->build_of[i];
    if (b == UFK_SNAP_NO_BUILD)
      memset(p, 0, n);
    else if (im->frames && im->frames[b].e.nframes) {
      if (e2b_read(im, b, p, n, m->storage_offset + shift) < 0) return -1;
    } else if (snap_pread(im->fds[b], p, n, m->storage_offset + shift,
                          im->files[b]) < 0)
      return -1;
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

void image_close(struct snap_image *im) {
  e2b_close(im);
  for (size_t i = 0; im->fds && i < im->nbuilds; i++)
    if (im->fds[i] >= 0) close(im->fds[i]);
  for (size_t i = 0; im->files && i < im->nbuilds; i++)
    free(im->files[i]);
  free(im->fds);
  free(im->files);
  free(im->build_of);
  free(im->builds);
  free(im->header_path);
  ufk_snap_free(&im->h);
  memset(im, 0, sizeof *im);
}

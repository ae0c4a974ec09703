/* Reading the compressed builds of V4/V5 generations in uffdkit-snap, and
 * checking a build's SHA-256 against its whole uncompressed diff. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2b.h"

/* STORE/ID/memfile.header: 1 when the build has none. */
static int own_header(void *opaque, const uint8_t id[16],
                      struct ufk_snap_header *own, struct ufk_snap_err *err) {
  char ids[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(id, ids);
  char *path = snap_path(opaque, ids, SNAP_HEADER);
  if (!path) return ufk_snap_fail(err, "out of memory");
  struct stat st;
  int rc = stat(path, &st) < 0 && errno == ENOENT
               ? 1
               : ufk_snap_load(path, own, err);
  free(path);
  return rc;
}

static char *object_path(const char *store, const uint8_t id[16],
                         uint32_t codec) {
  char ids[UFK_SNAP_UUID_STR], *p = NULL;
  ufk_snap_id_str(id, ids);
  if (asprintf(&p, "%s/%s/%s%s", store, ids, SNAP_MEMFILE,
               ufk_snap_codec_suffix(codec)) < 0) {
    snap_error("out of memory");
    return NULL;
  }
  return p;
}

/* The object holds every frame of e. */
static int check_object(int fd, const char *file,
                        const struct ufk_snap_entry *e, const char *header) {
  struct stat st;
  const struct ufk_snap_frame *last = &e->frames[e->nframes - 1];
  uint64_t need = last->start_c + last->size_c;
  if (fstat(fd, &st) < 0) {
    snap_error("%s: %s", file, strerror(errno));
    return -1;
  }
  if ((uint64_t)st.st_size >= need) return 0;
  snap_error("%s: %llu bytes, too short for the frames %s gives it: frame %zu "
             "ends at byte %llu",
             file, (unsigned long long)st.st_size, header, e->nframes - 1,
             (unsigned long long)need);
  return -1;
}

/* An entry without frames whose memfile is missing: E2B's rescue. */
static int rescue(struct snap_image *im, const char *store,
                  struct snap_frames *f) {
  char *path = object_path(store, f->e.build_id, 0);
  struct ufk_snap_err err;
  if (!path) return -1;
  int gone = access(path, F_OK) < 0 && errno == ENOENT;
  free(path);
  if (!gone) return 0;
  uint8_t id[16];
  memcpy(id, f->e.build_id, 16);
  ufk_snap_entry_free(&f->e);
  if (ufk_snap_rescue(&im->h, id, own_header, (void *)store, im->header_path,
                      &f->e, &err) == 0)
    return 0;
  snap_error("%s", err.msg);
  return -1;
}

int e2b_open_build(struct snap_image *im, const char *store, size_t i) {
  if (ufk_snap_format(&im->h) < 4) return 1;
  if (!im->frames && !(im->frames = calloc(im->nbuilds, sizeof *im->frames))) {
    snap_error("out of memory");
    return -1;
  }
  struct snap_frames *f = &im->frames[i];
  struct ufk_snap_err err;
  f->cached = -1;
  if (ufk_snap_resolve(&im->h, im->builds[i].id, own_header, (void *)store,
                       im->header_path, &f->e, &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  if (!ufk_snap_compressed(&f->e) && rescue(im, store, f) < 0) return -1;
  if (!ufk_snap_compressed(&f->e)) return 1;
  if (!(im->files[i] = object_path(store, f->e.build_id, f->e.codec)))
    return -1;
  im->fds[i] = open(im->files[i], O_RDONLY | O_CLOEXEC);
  if (im->fds[i] < 0) {
    snap_error("%s: cannot open: %s", im->files[i], strerror(errno));
    return -1;
  }
  return check_object(im->fds[i], im->files[i], &f->e, im->header_path);
}

/* Reads and decodes frame k of e from fd into buf (size_u bytes). */
static int load_frame(int fd, const char *file, const struct ufk_snap_entry *e,
                      size_t k, uint8_t *buf) {
  const struct ufk_snap_frame *f = &e->frames[k];
  uint8_t *c = malloc(f->size_c);
  char why[160];
  int rc = -1;
  if (!c)
    snap_error("out of memory for a frame");
  else if (snap_pread(fd, c, f->size_c, f->start_c, file) == 0) {
    rc = ufk_snap_decode_frame(e->codec, c, f->size_c, buf, f->size_u, why,
                               sizeof why);
    if (rc < 0)
      snap_error("%s: frame %zu (bytes %llu to %llu) refused: %s", file, k,
                 (unsigned long long)f->start_c,
                 (unsigned long long)(f->start_c + f->size_c), why);
  }
  free(c);
  return rc;
}

int e2b_read(struct snap_image *im, uint32_t b, void *buf, uint64_t n,
             uint64_t at) {
  struct snap_frames *sf = &im->frames[b];
  uint8_t *p = buf;
  while (n > 0) {
    long k = ufk_snap_frame_find(&sf->e, at);
    if (k < 0) {
      snap_error("%s: byte 0x%llx is in no frame", im->files[b],
                 (unsigned long long)at);
      return -1;
    }
    const struct ufk_snap_frame *f = &sf->e.frames[k];
    if (sf->cached != k) {
      void *nb = realloc(sf->buf, f->size_u);
      if (!nb) {
        snap_error("out of memory for a frame");
        return -1;
      }
      sf->buf = nb;
      sf->cached = -1;
      if (load_frame(im->fds[b], im->files[b], &sf->e, (size_t)k, sf->buf) < 0)
        return -1;
      sf->cached = k;
    }
    uint64_t off = at - f->start_u;
    uint64_t take = f->size_u - off < n ? f->size_u - off : n;
    memcpy(p, sf->buf + off, take);
    p += take;
    at += take;
    n -= take;
  }
  return 0;
}

void e2b_close(struct snap_image *im) {
  for (size_t i = 0; im->frames && i < im->nbuilds; i++) {
    ufk_snap_entry_free(&im->frames[i].e);
    free(im->frames[i].buf);
  }
  free(im->frames);
  im->frames = NULL;
}

/* Feeds [0, size) of the uncompressed diff to the hash. */
static int hash_diff(int fd, const char *file, const struct ufk_snap_entry *e,
                     EVP_MD_CTX *sha) {
  uint64_t u = 0;
  uint8_t *buf = NULL;
  int rc = 0;
  for (size_t k = 0;
       rc == 0 && (ufk_snap_compressed(e) ? k < e->nframes : u < e->size);
       k++) {
    size_t n = ufk_snap_compressed(e)     ? e->frames[k].size_u
               : e->size - u < SNAP_CHUNK ? (size_t)(e->size - u)
                                          : SNAP_CHUNK;
    if (ufk_snap_compressed(e) && e->frames[k].start_u != u) {
      snap_error("%s: frame %zu starts at 0x%llx, not 0x%llx: the table has "
                 "gaps, the diff cannot be hashed",
                 file, k, (unsigned long long)e->frames[k].start_u,
                 (unsigned long long)u);
      rc = -1;
      break;
    }
    void *nb = realloc(buf, n ? n : 1);
    if (!nb) rc = -1;
    buf = nb ? nb : buf;
    if (rc == 0)
      rc = ufk_snap_compressed(e) ? load_frame(fd, file, e, k, buf)
                                  : snap_pread(fd, buf, n, u, file);
    if (rc == 0 && !EVP_DigestUpdate(sha, buf, n)) rc = -1;
    u += n;
  }
  free(buf);
  if (rc == 0 && u != e->size) {
    snap_error("%s: the frames hold %llu bytes, the build's Size is %llu", file,
               (unsigned long long)u, (unsigned long long)e->size);
    rc = -1;
  }
  return rc;
}

static void hex(const uint8_t *p, char *out) {
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
}

static int compare(const uint8_t *got, const struct ufk_snap_entry *e,
                   const char *own_path) {
  if (!memcmp(got, e->checksum, 32)) return 0;
  char g[65], w[65], ids[UFK_SNAP_UUID_STR];
  hex(got, g);
  hex(e->checksum, w);
  ufk_snap_id_str(e->build_id, ids);
  snap_error("verify: build %s: the SHA-256 of its %llu-byte uncompressed "
             "diff is %s, but %s gives %s",
             ids, (unsigned long long)e->size, g, own_path, w);
  return 1;
}

int e2b_verify_sha(const char *store, const uint8_t id[16],
                   const struct ufk_snap_header *own, const char *own_path) {
  static const uint8_t zero[32];
  const struct ufk_snap_entry *e =
      ufk_snap_format(own) >= 4 ? ufk_snap_entry_of(own, id) : NULL;
  if (!e || !memcmp(e->checksum, zero, 32) || !e->size) return 0;
  char *file = object_path(store, id, ufk_snap_compressed(e) ? e->codec : 0);
  if (!file) return -1;
  int fd = open(file, O_RDONLY | O_CLOEXEC), rc = -1;
  EVP_MD_CTX *sha = EVP_MD_CTX_new();
  uint8_t got[32];
  unsigned len;
  if (fd < 0)
    snap_error("%s: cannot open: %s", file, strerror(errno));
  else if (sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) &&
           hash_diff(fd, file, e, sha) == 0 &&
           EVP_DigestFinal_ex(sha, got, &len))
    rc = compare(got, e, own_path);
  if (fd >= 0) close(fd);
  EVP_MD_CTX_free(sha);
  free(file);
  return rc < 0 ? 1 : rc;
}

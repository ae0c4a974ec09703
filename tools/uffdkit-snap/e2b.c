/* Writing generations with E2B's V4/V5 headers: the new build's diff cut
 * into frames of --frame-size bytes, each compressed on its own (zstd with
 * content size and checksum, or lz4 with block checksums) and concatenated
 * into memfile.zstd / memfile.lz4; its SHA-256 over the uncompressed diff;
 * the ancestors' entries copied from the parent and trimmed to what the
 * new header reads. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2b.h"
#include "parse.h"

#define DEFAULT_FRAME (2u << 20)

void e2b_opts_init(struct e2b_opts *o) {
  memset(o, 0, sizeof *o);
  o->codec = -1;
  o->frame_size = DEFAULT_FRAME;
  o->level = -1;
}

static int parse_codec(const char *s) {
  if (!strcmp(s, "none")) return UFK_SNAP_CODEC_NONE;
  if (!strcmp(s, "zstd")) return UFK_SNAP_CODEC_ZSTD;
  if (!strcmp(s, "lz4")) return UFK_SNAP_CODEC_LZ4;
  return -1;
}

int e2b_opt(struct e2b_opts *o, int c, const char *arg) {
  char *end;
  switch (c) {
  case E2B_OPT_VERSION:
    o->version = (unsigned)strtoul(arg, &end, 10);
    if (*end || o->version < 1 || o->version > 5) {
      snap_error("--header-version '%s': must be 1 to 5", arg);
      return -1;
    }
    return 1;
  case E2B_OPT_CODEC:
    if ((o->codec = parse_codec(arg)) < 0) {
      snap_error("--codec '%s': must be zstd, lz4 or none", arg);
      return -1;
    }
    return 1;
  case E2B_OPT_FRAME:
    if (ufk_parse_size(arg, &o->frame_size) < 0 || o->frame_size == 0 ||
        o->frame_size > (1u << 30)) {
      snap_error("--frame-size '%s': must be a size from 4K to 1G", arg);
      return -1;
    }
    return 1;
  case E2B_OPT_LEVEL:
    o->level = (int)strtol(arg, &end, 10);
    if (*end || o->level < 0 || o->level > 19) {
      snap_error("--level '%s': must be 0 to 19", arg);
      return -1;
    }
    return 1;
  case E2B_OPT_NO_ANCESTORS:
    o->no_ancestors = 1;
    return 1;
  }
  return 0;
}

int e2b_settle(struct e2b_opts *o, uint64_t bs,
               const struct ufk_snap_header *parent) {
  unsigned pv = parent ? ufk_snap_format(parent) : 0;
  if (!o->version) o->version = o->codec > 0 ? (pv > 4 ? pv : 4) : pv ? pv : 3;
  if (o->codec < 0) o->codec = UFK_SNAP_CODEC_NONE;
  if (o->version < 4 && o->codec != UFK_SNAP_CODEC_NONE) {
    snap_error("--codec %s needs --header-version 4 or 5",
               ufk_snap_codec_name((uint32_t)o->codec));
    return -1;
  }
  if (o->version < 4 && pv >= 4) {
    snap_error("--header-version %u: the parent's header is version %u, whose "
               "builds a version 1-3 header cannot describe",
               o->version, pv);
    return -1;
  }
  if (o->frame_size % bs) {
    snap_error("--frame-size %llu: not a multiple of the block size %llu",
               (unsigned long long)o->frame_size, (unsigned long long)bs);
    return -1;
  }
  if (o->level < 0) o->level = o->codec == UFK_SNAP_CODEC_ZSTD ? 2 : 0;
  return 0;
}

/* The new build's compressed object, written next to its raw diff. */
struct packer {
  const struct e2b_opts *o;
  struct snap_out *out;
  int in, fd;
  char *path;
  EVP_MD_CTX *sha;
  struct ufk_snap_entry *e;
  size_t cap;
  uint64_t c_end;
};

static int add_frame(struct packer *p, uint64_t u, const uint8_t *buf,
                     size_t n) {
  void *z;
  size_t zl;
  if (ufk_snap_encode_frame((uint32_t)p->o->codec, p->o->level, buf, n, &z,
                            &zl) < 0) {
    snap_error("%s: cannot compress %zu bytes", p->path, n);
    return -1;
  }
  int rc = snap_write(p->fd, z, zl, p->path);
  free(z);
  if (rc < 0) return -1;
  if (p->e->nframes == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 16;
    void *nf = realloc(p->e->frames, p->cap * sizeof *p->e->frames);
    if (!nf) {
      snap_error("out of memory for a frame table");
      return -1;
    }
    p->e->frames = nf;
  }
  p->e->frames[p->e->nframes++] =
      (struct ufk_snap_frame){.start_u = u,
                              .start_c = p->c_end,
                              .size_u = (uint32_t)n,
                              .size_c = (uint32_t)zl};
  p->c_end += zl;
  return 0;
}

/* Hashes the raw diff and, with a codec, compresses it frame by frame. */
static int pack(struct packer *p) {
  uint64_t size = p->out->written;
  uint8_t *buf = malloc(p->o->frame_size);
  if (!buf) {
    snap_error("out of memory for a frame");
    return -1;
  }
  int rc = 0;
  for (uint64_t u = 0; rc == 0 && u < size; u += p->o->frame_size) {
    size_t n = size - u < p->o->frame_size ? size - u : p->o->frame_size;
    rc = snap_check_interrupt() < 0 ||
                 snap_pread(p->in, buf, n, u, p->out->memfile) < 0 ||
                 !EVP_DigestUpdate(p->sha, buf, n)
             ? -1
             : 0;
    if (rc == 0 && p->o->codec != UFK_SNAP_CODEC_NONE)
      rc = add_frame(p, u, buf, n);
  }
  free(buf);
  unsigned len;
  if (rc == 0 && !EVP_DigestFinal_ex(p->sha, p->e->checksum, &len)) rc = -1;
  return rc;
}

/* The compressed object replaces the raw diff as out's data file, so
 * out_commit syncs it and out_abort removes it. */
static int swap_data(struct packer *p) {
  if (unlink(p->out->memfile) < 0) {
    snap_error("%s: cannot remove: %s", p->out->memfile, strerror(errno));
    return -1;
  }
  close(p->out->fd);
  free(p->out->memfile);
  p->out->fd = p->fd;
  p->out->memfile = p->path;
  p->fd = -1;
  p->path = NULL;
  return 0;
}

static int self_entry(struct snap_out *out, const struct e2b_opts *o,
                      struct ufk_snap_entry *e) {
  struct packer p = {.o = o, .out = out, .fd = -1, .e = e};
  memcpy(e->build_id, out->id, 16);
  e->size = out->written;
  e->codec = (uint32_t)o->codec;
  int rc = -1;
  p.in = open(out->memfile, O_RDONLY | O_CLOEXEC);
  p.sha = EVP_MD_CTX_new();
  if (p.in < 0 || !p.sha || !EVP_DigestInit_ex(p.sha, EVP_sha256(), NULL)) {
    snap_error("%s: cannot read back: %s", out->memfile, strerror(errno));
    goto out;
  }
  if (o->codec != UFK_SNAP_CODEC_NONE) {
    p.path = snap_path(out->tmpdir, SNAP_MEMFILE, NULL);
    char *full = NULL;
    if (p.path &&
        asprintf(&full, "%s%s", p.path, ufk_snap_codec_suffix(e->codec)) < 0)
      full = NULL;
    free(p.path);
    p.path = full;
    if (!p.path || (p.fd = open(p.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                                0644)) < 0) {
      snap_error("%s: cannot create: %s", p.path ? p.path : "memfile",
                 strerror(errno));
      goto out;
    }
  }
  rc = pack(&p);
  if (rc == 0 && o->codec != UFK_SNAP_CODEC_NONE) rc = swap_data(&p);
out:
  if (p.in >= 0) close(p.in);
  if (p.fd >= 0) {
    close(p.fd);
    unlink(p.path);
  }
  free(p.path);
  EVP_MD_CTX_free(p.sha);
  return rc;
}

/* Entries of the builds h reads other than its own: the parent's (a v1-3
 * parent's builds get the all-zero entry, uncompressed size unknown). */
static int ancestor_entries(struct ufk_snap_header *h,
                            const struct ufk_snap_header *parent) {
  struct ufk_snap_build *b;
  size_t nb;
  if (ufk_snap_builds(h, &b, &nb) < 0) return -1;
  int rc = 0;
  for (size_t i = 0; i < nb && rc == 0; i++) {
    if (!memcmp(b[i].id, h->build_id, 16)) continue;
    const struct ufk_snap_entry *pe = ufk_snap_entry_of(parent, b[i].id);
    struct ufk_snap_entry *e = &h->entries[h->nentries];
    if (pe) {
      rc = ufk_snap_entry_copy(pe, e);
    } else if (ufk_snap_format(parent) < 4) {
      memset(e, 0, sizeof *e);
      memcpy(e->build_id, b[i].id, 16);
    } else {
      continue; /* the parent lost it too: readers use the build's header */
    }
    if (rc == 0) h->nentries++;
  }
  free(b);
  return rc;
}

int e2b_finish(struct snap_out *out, struct ufk_snap_header *h,
               const struct ufk_snap_header *parent, const struct e2b_opts *o) {
  h->version = o->version;
  if (o->version < 4) return 0;
  size_t nb = 1;
  for (size_t i = 0; i < h->nmappings; i++)
    nb += !ufk_snap_is_nil(h->mappings[i].build_id);
  if (!(h->entries = calloc(nb, sizeof *h->entries))) {
    snap_error("out of memory for %zu build entries", nb);
    return -1;
  }
  h->nentries = 1;
  if (self_entry(out, o, &h->entries[0]) < 0) return -1;
  if (parent && !o->no_ancestors && ancestor_entries(h, parent) < 0) {
    snap_error("out of memory copying build entries");
    return -1;
  }
  struct ufk_snap_err err;
  if (ufk_snap_trim(h) < 0) {
    snap_error("out of memory trimming build entries");
    return -1;
  }
  if (ufk_snap_validate(h, "new header", &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  return 0;
}

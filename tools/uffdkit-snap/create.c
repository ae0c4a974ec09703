/* create and diff: write a new generation into the store. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2b.h"
#include "parse.h"

/* A generation being written. */
struct gen {
  struct snap_out out;
  uint64_t *dirty;
  uint64_t *empty; /* NULL for generation 0: every block not dirty is nil */
  uint64_t bs;
  uint64_t size;
  int in;
  const char *in_name;
  uint8_t *buf; /* one chunk of input */
  uint8_t *old; /* one chunk of the parent's content */
  struct progress prog;
};

/* A block of new content: zeros become nil, never inherited. */
static int put_block(struct gen *g, uint64_t blk, const uint8_t *data) {
  if (snap_is_zero(data, g->bs)) {
    if (g->empty) bitmap_set(g->empty, blk, 1);
    return 0;
  }
  bitmap_set(g->dirty, blk, 1);
  return out_block(&g->out, data, g->bs);
}

static int open_input(struct gen *g, const char *path) {
  g->in_name = path;
  g->in = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (g->in < 0 || fstat(g->in, &st) < 0) {
    snap_error("%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snap_error("%s: not a regular file", path);
    return -1;
  }
  g->size = (uint64_t)st.st_size;
  posix_fadvise(g->in, 0, 0, POSIX_FADV_SEQUENTIAL);
  return 0;
}

static int check_input_size(const struct gen *g) {
  if (g->size == 0) {
    snap_error("%s: empty file", g->in_name);
    return -1;
  }
  if (g->size % g->bs) {
    snap_error("%s: size %llu is not a multiple of the block size %llu",
               g->in_name, (unsigned long long)g->size,
               (unsigned long long)g->bs);
    return -1;
  }
  return 0;
}

/* Bitmaps, buffers and the output folder. */
static int gen_begin(struct gen *g, const char *store, int with_parent) {
  uint64_t nblocks = g->size / g->bs;
  g->buf = aligned_alloc(4096, SNAP_CHUNK);
  g->old = with_parent ? aligned_alloc(4096, SNAP_CHUNK) : NULL;
  if (!g->buf || (with_parent && !g->old)) {
    snap_error("out of memory for buffers");
    return -1;
  }
  if (!(g->dirty = bitmap_new(nblocks))) return -1;
  if (with_parent && !(g->empty = bitmap_new(nblocks))) return -1;
  return out_begin(&g->out, store);
}

static int gen_finish(struct gen *g, struct ufk_snap_header *h,
                      const struct ufk_snap_header *parent,
                      const struct e2b_opts *eo) {
  char ids[UFK_SNAP_UUID_STR];
  memcpy(ids, g->out.ids, sizeof ids);
  progress_end(&g->prog);
  if (e2b_finish(&g->out, h, parent, eo) < 0 || out_commit(&g->out, h) < 0)
    return -1;
  printf("%s\n", ids);
  return fflush(stdout) == 0 ? 0 : -1;
}

static void gen_free(struct gen *g) {
  progress_end(&g->prog);
  out_abort(&g->out);
  if (g->in >= 0) close(g->in);
  free(g->dirty);
  free(g->empty);
  free(g->buf);
  free(g->old);
}

static int parse_block_size(const char *s, uint64_t *bs) {
  if (ufk_parse_size(s, bs) == 0 &&
      (*bs == UFK_SNAP_BLOCK_4K || *bs == UFK_SNAP_BLOCK_2M))
    return 0;
  snap_error("--block-size '%s': must be 4096 (4K) or 2M", s);
  return -1;
}

static int create_blocks(struct gen *g) {
  progress_start(&g->prog, "create", g->size);
  for (uint64_t off = 0; off < g->size; off += SNAP_CHUNK) {
    size_t n = g->size - off < SNAP_CHUNK ? g->size - off : SNAP_CHUNK;
    if (snap_check_interrupt() < 0 ||
        snap_pread(g->in, g->buf, n, off, g->in_name) < 0)
      return -1;
    for (size_t b = 0; b < n; b += g->bs)
      if (put_block(g, (off + b) / g->bs, g->buf + b) < 0) return -1;
    progress_set(&g->prog, off + n);
  }
  return 0;
}

int cmd_create(int argc, char **argv) {
  static const struct option opts[] = {
      {"block-size", required_argument, 0, 'b'},
      E2B_LONG_OPTIONS,
      {0, 0, 0, 0}};
  struct gen g = {.in = -1, .bs = UFK_SNAP_BLOCK_4K, .out = {.fd = -1}};
  struct e2b_opts eo;
  int c, r;
  e2b_opts_init(&eo);
  optind = 1;
  while ((c = getopt_long(argc, argv, "b:", opts, NULL)) != -1)
    if ((r = e2b_opt(&eo, c, optarg)) < 0 ||
        (!r && (c != 'b' || parse_block_size(optarg, &g.bs) < 0)))
      return SNAP_EXIT_USAGE;
  if (argc - optind != 2) {
    snap_error("create: expected MEMFILE STORE (see --help)");
    return SNAP_EXIT_USAGE;
  }
  if (e2b_settle(&eo, g.bs, NULL) < 0) return SNAP_EXIT_USAGE;
  struct ufk_snap_header h = {0};
  struct ufk_snap_err err;
  int rc = -1;
  if (open_input(&g, argv[optind]) < 0 || check_input_size(&g) < 0 ||
      gen_begin(&g, argv[optind + 1], 0) < 0 || create_blocks(&g) < 0)
    goto out;
  if (ufk_snap_first(g.size, g.bs, g.out.id, g.dirty, &h, &err) < 0) {
    snap_error("%s", err.msg);
    goto out;
  }
  rc = gen_finish(&g, &h, NULL, &eo);
out:
  ufk_snap_free(&h);
  gen_free(&g);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

/* Full input: a block is dirty when it differs from the parent's. */
static int diff_full(struct gen *g, struct snap_image *parent) {
  progress_start(&g->prog, "diff", g->size);
  for (uint64_t off = 0; off < g->size; off += SNAP_CHUNK) {
    size_t n = g->size - off < SNAP_CHUNK ? g->size - off : SNAP_CHUNK;
    if (snap_check_interrupt() < 0 ||
        snap_pread(g->in, g->buf, n, off, g->in_name) < 0 ||
        image_read(parent, g->old, n, off) < 0)
      return -1;
    for (size_t b = 0; b < n; b += g->bs)
      if (memcmp(g->buf + b, g->old + b, g->bs) &&
          put_block(g, (off + b) / g->bs, g->buf + b) < 0)
        return -1;
    progress_set(&g->prog, off + n);
  }
  return 0;
}

/* Start of the data at or after pos, or `limit` if none before it. */
static int seek_data(struct gen *g, uint64_t pos, uint64_t limit,
                     uint64_t *out) {
  off_t r = lseek(g->in, (off_t)pos, SEEK_DATA);
  if (r < 0 && errno != ENXIO) {
    snap_error("%s: SEEK_DATA at %llu: %s", g->in_name, (unsigned long long)pos,
               strerror(errno));
    return -1;
  }
  *out = r < 0 || (uint64_t)r > limit ? limit : (uint64_t)r;
  return 0;
}

static int seek_hole(struct gen *g, uint64_t pos, uint64_t limit,
                     uint64_t *out) {
  off_t r = lseek(g->in, (off_t)pos, SEEK_HOLE);
  if (r < 0) {
    snap_error("%s: SEEK_HOLE at %llu: %s", g->in_name, (unsigned long long)pos,
               strerror(errno));
    return -1;
  }
  *out = (uint64_t)r > limit ? limit : (uint64_t)r;
  return 0;
}

/* The parent's block with the written (data) parts of the input on top. */
static int overlay_block(struct gen *g, struct snap_image *parent,
                         uint64_t start) {
  uint64_t end = start + g->bs, s, e;
  if (image_read(parent, g->old, g->bs, start) < 0) return -1;
  for (uint64_t p = start; p < end; p = e) {
    if (seek_data(g, p, end, &s) < 0) return -1;
    if (s >= end) break;
    if (seek_hole(g, s, end, &e) < 0) return -1;
    memcpy(g->old + (s - start), g->buf + (s - start), e - s);
  }
  return 0;
}

/* A block holding some data: written pages are dirty, holes are not. */
static int sparse_block(struct gen *g, struct snap_image *parent,
                        uint64_t blk) {
  uint64_t start = blk * g->bs, end = start + g->bs, s, e;
  if (snap_pread(g->in, g->buf, g->bs, start, g->in_name) < 0 ||
      seek_data(g, start, end, &s) < 0 || seek_hole(g, start, end, &e) < 0)
    return -1;
  if (s == start && e == end) return put_block(g, blk, g->buf);
  if (overlay_block(g, parent, start) < 0) return -1;
  return put_block(g, blk, g->old);
}

static int diff_sparse(struct gen *g, struct snap_image *parent) {
  progress_start(&g->prog, "diff", g->size);
  uint64_t pos = 0, data;
  while (pos < g->size) {
    if (snap_check_interrupt() < 0 || seek_data(g, pos, g->size, &data) < 0)
      return -1;
    if (data >= g->size) break;
    uint64_t blk = data / g->bs;
    if (sparse_block(g, parent, blk) < 0) return -1;
    pos = (blk + 1) * g->bs;
    progress_set(&g->prog, pos);
  }
  return 0;
}

static int check_same_size(const struct gen *g, const struct snap_image *p) {
  if (g->size == p->h.size) return 0;
  snap_error("%s: %llu bytes, but the parent %s has size %llu", g->in_name,
             (unsigned long long)g->size, p->header_path,
             (unsigned long long)p->h.size);
  return -1;
}

int cmd_diff(int argc, char **argv) {
  static const struct option opts[] = {
      {"sparse", no_argument, 0, 's'}, E2B_LONG_OPTIONS, {0, 0, 0, 0}};
  struct gen g = {.in = -1, .out = {.fd = -1}};
  struct e2b_opts eo;
  int c, r, sparse = 0;
  e2b_opts_init(&eo);
  optind = 1;
  while ((c = getopt_long(argc, argv, "s", opts, NULL)) != -1)
    if ((r = e2b_opt(&eo, c, optarg)) < 0 || (!r && c != 's'))
      return SNAP_EXIT_USAGE;
    else if (!r)
      sparse = 1;
  if (argc - optind != 3) {
    snap_error("diff: expected STORE PARENT_BUILD NEWMEM (see --help)");
    return SNAP_EXIT_USAGE;
  }
  const char *store = argv[optind];
  struct snap_image parent;
  struct ufk_snap_header h = {0};
  struct ufk_snap_err err;
  int rc = -1;
  if (image_open(&parent, store, argv[optind + 1]) < 0 ||
      open_input(&g, argv[optind + 2]) < 0 || check_same_size(&g, &parent) < 0)
    goto out;
  g.bs = parent.h.block_size;
  if (e2b_settle(&eo, g.bs, &parent.h) < 0) {
    rc = -2;
    goto out;
  }
  if (gen_begin(&g, store, 1) < 0 ||
      (sparse ? diff_sparse(&g, &parent) : diff_full(&g, &parent)) < 0)
    goto out;
  if (ufk_snap_next(&parent.h, g.out.id, g.dirty, g.empty, &h, &err) < 0) {
    snap_error("%s", err.msg);
    goto out;
  }
  rc = gen_finish(&g, &h, &parent.h, &eo);
out:
  ufk_snap_free(&h);
  gen_free(&g);
  image_close(&parent);
  return rc == -2 ? SNAP_EXIT_USAGE : rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

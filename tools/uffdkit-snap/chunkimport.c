/* uffdkit-snap store import: a raw memory file, a Firecracker diff file
 * over a snapshot of the store, or an E2B/Wrenn generation, cut into
 * chunks; only chunks the store does not hold are written. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "chunkwrite.h"
#include "manifest.h"
#include "parse.h"
#include "snap.h"

struct imp {
  struct chunkstore s;
  struct chunkwriter w;
  const char *name, *in_name;
  int in;                /* raw or diff file */
  struct snap_image e2b; /* or an E2B generation */
  int is_e2b, have_base;
  struct ufk_store_manifest base;
  struct cs_loc *base_locs;
  uint64_t size, nchunks;
  uint64_t hole_to;           /* raw input: bytes below it known to be a hole */
  struct ufk_store_ref *refs; /* pack: number in s.packs until the end */
  uint8_t *buf, *old, *sums;  /* a chunk, its base's, its page sums */
  uint64_t zero, dedup, kept;
  struct progress prog;
};

static uint32_t chunk_len(const struct imp *m, uint64_t i) {
  uint64_t cs = m->s.info.chunk_size, left = m->size - i * cs;
  return (uint32_t)(left < cs ? left : cs);
}

static int put_chunk(struct imp *m, uint64_t i, const uint8_t *buf,
                     uint32_t len) {
  struct ufk_store_ref *r = &m->refs[i];
  if (ufk_store_is_zero(buf, len)) {
    r->pack = UFK_STORE_NO_PACK;
    m->zero++;
    return 0;
  }
  /* The page sums, made once for the id, are stored as they are. */
  ufk_store_chunk_id_sums(&m->s.keys, buf, len, m->sums, r->id);
  const struct cs_loc *l = cs_find(&m->s, r->id);
  if (l) {
    r->pack = l->pack;
    m->dedup++;
    return 0;
  }
  int rc = cw_add(&m->w, r->id, m->s.keys.page_sums ? m->sums : NULL, buf, len,
                  &r->pack);
  if (rc == 1) m->dedup++; /* the same chunk earlier in this import */
  return rc < 0 ? -1 : 0;
}

static int seek(struct imp *m, uint64_t pos, int whence, uint64_t limit,
                uint64_t *out) {
  off_t r = lseek(m->in, (off_t)pos, whence);
  if (r < 0 && !(whence == SEEK_DATA && errno == ENXIO)) {
    snap_error("%s: %s at %llu: %s", m->in_name,
               whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
               (unsigned long long)pos, strerror(errno));
    return -1;
  }
  *out = r < 0 || (uint64_t)r > limit ? limit : (uint64_t)r;
  return 0;
}

static int base_chunk(struct imp *m, uint64_t i, uint8_t *out, uint32_t len) {
  if (m->base_locs[i].entry == UINT32_MAX) {
    memset(out, 0, len);
    return 0;
  }
  return cs_read_chunk(&m->s, &m->base_locs[i], out);
}

/* A chunk of a diff file: untouched, it is the base's; partly written, the
 * written pages go over the base's bytes. */
static int diff_chunk(struct imp *m, uint64_t i, uint32_t len) {
  uint64_t start = i * m->s.info.chunk_size, end = start + len, s, e;
  if (seek(m, start, SEEK_DATA, end, &s) < 0) return -1;
  if (s >= end) {
    m->refs[i].pack = m->base_locs[i].entry == UINT32_MAX
                          ? UFK_STORE_NO_PACK
                          : m->base_locs[i].pack;
    memcpy(m->refs[i].id, m->base.refs[i].id, UFK_STORE_ID);
    m->kept++;
    return 0;
  }
  if (base_chunk(m, i, m->old, len) < 0 ||
      snap_pread(m->in, m->buf, len, start, m->in_name) < 0)
    return -1;
  for (uint64_t p = s; p < end; p = e) {
    if (seek(m, p, SEEK_DATA, end, &s) < 0) return -1;
    if (s >= end) break;
    if (seek(m, s, SEEK_HOLE, end, &e) < 0) return -1;
    memcpy(m->old + (s - start), m->buf + (s - start), e - s);
  }
  return put_chunk(m, i, m->old, len);
}

/* Whether chunk i of a raw image lies in one of its holes (zero, left
 * unread: a sparse image imports at the speed of its data).  hole_to is
 * where the data after the last hole found starts. */
static int in_hole(struct imp *m, uint64_t i, uint32_t len) {
  uint64_t off = i * m->s.info.chunk_size;
  if (off >= m->hole_to && seek(m, off, SEEK_DATA, m->size, &m->hole_to) < 0)
    return -1;
  return off + len <= m->hole_to;
}

static int one_chunk(struct imp *m, uint64_t i) {
  uint32_t len = chunk_len(m, i);
  uint64_t off = i * m->s.info.chunk_size;
  if (m->have_base) return diff_chunk(m, i, len);
  int hole = m->is_e2b ? 0 : in_hole(m, i, len);
  if (hole < 0) return -1;
  if (hole) {
    m->refs[i].pack = UFK_STORE_NO_PACK;
    m->zero++;
    return 0;
  }
  int rc = m->is_e2b ? image_read(&m->e2b, m->buf, len, off)
                     : snap_pread(m->in, m->buf, len, off, m->in_name);
  return rc < 0 ? -1 : put_chunk(m, i, m->buf, len);
}

/* The manifest's bytes, made before anything is published so that one a
 * reader would refuse leaves nothing behind: pack numbers of the store
 * become numbers in the manifest's list. */
static int make_manifest(struct imp *m, uint8_t **buf, size_t *len) {
  struct ufk_store_manifest mf = {.flags = m->s.info.flags,
                                  .chunk_size = m->s.info.chunk_size,
                                  .image_size = m->size,
                                  .nchunks = m->nchunks,
                                  .refs = m->refs};
  long *num = malloc(m->s.npacks * sizeof *num + 1);
  mf.packs = malloc(m->s.npacks * (size_t)UFK_STORE_ID + 1);
  int rc = -1, oom = !num || !mf.packs;
  *buf = NULL;
  if (oom) goto out;
  for (size_t p = 0; p < m->s.npacks; p++)
    num[p] = -1;
  for (uint64_t i = 0; i < m->nchunks; i++) {
    uint32_t p = m->refs[i].pack;
    if (p == UFK_STORE_NO_PACK) continue;
    if (num[p] < 0) {
      num[p] = mf.npacks;
      memcpy(mf.packs[mf.npacks++], m->s.packs[p].idx.pack, UFK_STORE_ID);
    }
    m->refs[i].pack = (uint32_t)num[p];
  }
  *len = ufk_store_manifest_size(&mf);
  /* The chunks were checked before the import; its pack list counts too. */
  if (*len > UFK_STORE_META_MAX) {
    snap_error("%s: a manifest of %zu bytes (%zu packs), more than the %llu "
               "a reader loads",
               m->name, *len, (size_t)mf.npacks,
               (unsigned long long)UFK_STORE_META_MAX);
    goto out;
  }
  if ((*buf = malloc(*len))) {
    ufk_store_manifest_put(&mf, &m->s.keys, *buf);
    rc = 0;
  }
  oom = !*buf;
out:
  if (oom) snap_error("out of memory");
  free(num);
  free(mf.packs);
  return rc;
}

/* A manifest of nchunks references fits what a reader loads. */
static int manifest_fits(uint64_t nchunks) {
  struct ufk_store_manifest mf = {.nchunks = nchunks};
  return ufk_store_manifest_size(&mf) <= UFK_STORE_META_MAX;
}

/* Refuses an image whose manifest in chunks of `chunk` would be larger
 * than a reader loads, naming the chunk size that would do. */
static int check_manifest_size(const struct imp *m, uint32_t chunk) {
  uint64_t n = (m->size - 1) / chunk + 1, fit = chunk;
  if (manifest_fits(n)) return 0;
  while (fit <= UFK_STORE_CHUNK_MAX && !manifest_fits((m->size - 1) / fit + 1))
    fit *= 2;
  char how[96] = "no chunk size makes it fit";
  if (fit <= UFK_STORE_CHUNK_MAX)
    snprintf(how, sizeof how,
             "import it into a new store with --chunk-size %llu or more",
             (unsigned long long)fit);
  snap_error("%s: %llu bytes in chunks of %u are %llu chunks, a manifest "
             "larger than the %llu bytes a reader loads; %s",
             m->name, (unsigned long long)m->size, chunk, (unsigned long long)n,
             (unsigned long long)UFK_STORE_META_MAX, how);
  return -1;
}

static int run(struct imp *m) {
  m->nchunks = (m->size - 1) / m->s.info.chunk_size + 1;
  m->refs = calloc(m->nchunks, sizeof *m->refs);
  m->buf = malloc(m->s.info.chunk_size);
  m->old = malloc(m->s.info.chunk_size);
  m->sums =
      malloc(ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, m->s.info.chunk_size));
  if (!m->refs || !m->buf || !m->old || !m->sums) {
    snap_error("out of memory for %llu chunks", (unsigned long long)m->nchunks);
    return -1;
  }
  progress_start(&m->prog, "import", m->nchunks);
  for (uint64_t i = 0; i < m->nchunks; i++) {
    if (snap_check_interrupt() < 0 || one_chunk(m, i) < 0) return -1;
    progress_set(&m->prog, i + 1);
  }
  progress_end(&m->prog);
  uint8_t *buf;
  size_t len = 0;
  if (snap_check_interrupt() < 0 || cw_flush(&m->w) < 0 ||
      make_manifest(m, &buf, &len) < 0)
    return -1;
  int rc = cw_publish(&m->w) < 0
               ? -1
               : cs_publish(&m->s, "snapshots", m->name, buf, len);
  free(buf);
  return rc;
}

/* Encoders an import runs at most, and by default one per CPU. */
#define IMPORT_THREADS_MAX 64

static int default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > IMPORT_THREADS_MAX ? IMPORT_THREADS_MAX : (int)n;
}

struct imp_opts {
  struct cs_opts cs;
  const char *base, *e2b, *codec;
  int level, threads;
  uint64_t pack_size;
};

static int parse_codec(const char *s, int *out) {
  if (!strcmp(s, "zstd"))
    *out = UFK_CODEC_ZSTD;
  else if (!strcmp(s, "lz4"))
    *out = UFK_CODEC_LZ4;
  else if (!strcmp(s, "raw"))
    *out = UFK_CODEC_RAW;
  else {
    snap_error("--codec: '%s' is not zstd, lz4 or raw", s);
    return -1;
  }
  return 0;
}

static int parse_opts(int argc, char **argv, struct imp_opts *o) {
  static const struct option opts[] = {
      {"base", required_argument, 0, 'b'},
      {"e2b", required_argument, 0, 'e'},
      {"chunk-size", required_argument, 0, 'c'},
      {"codec", required_argument, 0, 'z'},
      {"level", required_argument, 0, 'l'},
      {"pack-size", required_argument, 0, 'p'},
      {"key-file", required_argument, 0, 'k'},
      {"key-env", required_argument, 0, 'K'},
      {"check-by", required_argument, 0, 'C'},
      {"decode-by", required_argument, 0, 'D'},
      {"threads", required_argument, 0, 't'},
      {0}};
  uint64_t v;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'b')
      o->base = optarg;
    else if (c == 'e')
      o->e2b = optarg;
    else if (c == 'z')
      o->codec = optarg;
    else if (c == 'k')
      o->cs.key_file = optarg;
    else if (c == 'K')
      o->cs.key_env = optarg;
    else if ((c == 'C' || c == 'D') &&
             (!strcmp(optarg, "page") || !strcmp(optarg, "chunk")))
      *(c == 'C' ? &o->cs.check_by : &o->cs.decode_by) =
          optarg[0] == 'p' ? CS_BY_PAGE : CS_BY_CHUNK;
    else if (c == 'l' && ufk_parse_u64(optarg, &v) == 0 && v >= 1 && v <= 19)
      o->level = (int)v; /* LZ4's bound is checked with the codec */
    else if (c == 'c' && ufk_parse_size(optarg, &v) == 0 &&
             ufk_store_chunk_size_ok(v))
      o->cs.chunk_size = (uint32_t)v;
    else if (c == 'p' && ufk_parse_size(optarg, &v) == 0 && v >= (1u << 20))
      o->pack_size = v;
    else if (c == 't' && ufk_parse_u64(optarg, &v) == 0 && v >= 1 &&
             v <= IMPORT_THREADS_MAX)
      o->threads = (int)v;
    else {
      if (c == 'C' || c == 'D')
        snap_error("--%s: '%s' is not page or chunk",
                   c == 'C' ? "check-by" : "decode-by", optarg);
      else if (c != '?')
        snap_error("--%s: '%s' is out of range (chunk size: a power of two "
                   "in 4K..4M; level: 1..19; pack size: 1M or more; "
                   "threads: 1..%d)",
                   c == 'l'   ? "level"
                   : c == 'c' ? "chunk-size"
                   : c == 't' ? "threads"
                              : "pack-size",
                   optarg, IMPORT_THREADS_MAX);
      return -1;
    }
  }
  if (o->cs.decode_by == CS_BY_PAGE && o->cs.check_by == CS_BY_CHUNK) {
    snap_error("--decode-by page needs --check-by page (each page's sum)");
    return -1;
  }
  if (argc - optind != 3 || (o->base && o->e2b)) {
    snap_error("usage: store import STORE NAME IMAGE [--base SNAPSHOT] | "
               "store import STORE NAME BUILD --e2b E2B_STORE");
    return -1;
  }
  return 0;
}

static int open_input(struct imp *m, const struct imp_opts *o,
                      const char *arg) {
  if (o->e2b) {
    m->is_e2b = 1;
    m->in_name = arg;
    if (image_open(&m->e2b, o->e2b, arg) < 0) return -1;
    m->size = m->e2b.h.size;
    return 0;
  }
  struct stat st;
  m->in_name = arg;
  m->in = open(arg, O_RDONLY | O_CLOEXEC);
  if (m->in < 0 || fstat(m->in, &st) < 0) {
    snap_error("%s: cannot open: %s", arg, strerror(errno));
    return -1;
  }
  m->size = (uint64_t)st.st_size;
  if (m->size == 0 || m->size % 4096) {
    snap_error("%s: %llu bytes is not a positive multiple of 4096", arg,
               (unsigned long long)m->size);
    return -1;
  }
  return 0;
}

static int open_base(struct imp *m, const char *base) {
  if (cs_load_manifest(&m->s, base, &m->base) < 0) return -1;
  m->have_base = 1;
  if (m->base.image_size != m->size) {
    snap_error("%s: %llu bytes, but the base snapshot %s has %llu", m->in_name,
               (unsigned long long)m->size, base,
               (unsigned long long)m->base.image_size);
    return -1;
  }
  return cs_resolve(&m->s, &m->base, base, &m->base_locs);
}

static int refuse_existing(struct imp *m) {
  char *path = cs_path(&m->s, "snapshots", m->name);
  int exists = path && access(path, F_OK) == 0;
  if (exists) snap_error("%s: the snapshot exists already", path);
  free(path);
  return exists || !path ? -1 : 0;
}

static void report(const struct imp *m) {
  printf("%s: %llu chunks of %u bytes: %llu new (%llu bytes stored for %llu), "
         "%llu already stored, %llu kept from the base, %llu zero\n",
         m->name, (unsigned long long)m->nchunks, m->s.info.chunk_size,
         (unsigned long long)m->w.new_chunks,
         (unsigned long long)m->w.new_stored, (unsigned long long)m->w.new_raw,
         (unsigned long long)m->dedup, (unsigned long long)m->kept,
         (unsigned long long)m->zero);
}

static void imp_free(struct imp *m) {
  progress_end(&m->prog);
  if (m->in >= 0) close(m->in);
  if (m->is_e2b) image_close(&m->e2b);
  ufk_store_manifest_free(&m->base);
  free(m->base_locs);
  free(m->refs);
  free(m->buf);
  free(m->old);
  free(m->sums);
  cw_free(&m->w);
  cs_close(&m->s);
}

/* A store is there already (its chunk size is its own). */
static int store_exists(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/store", dir);
  return access(path, F_OK) == 0;
}

/* The level a codec gets when none is given, and the highest it takes:
 * LZ4HC level 2 by default (docs/benchmark.md, "Default codec"). */
static int level_of(int codec, int level) {
  int most = codec == UFK_CODEC_LZ4 ? UFK_STORE_LZ4_LEVEL_MAX
                                    : UFK_STORE_ZSTD_LEVEL_MAX;
  if (!level) return codec == UFK_CODEC_LZ4 ? 2 : 3;
  if (level <= most) return level;
  snap_error("--level %d: %s takes 1 to %d", level,
             codec == UFK_CODEC_LZ4 ? "lz4" : "zstd", most);
  return -1;
}

int cs_import(int argc, char **argv) {
  struct imp_opts o = {.codec = "lz4",
                       .pack_size = CS_DEFAULT_PACK,
                       .threads = default_threads()};
  struct imp m = {.in = -1, .s.lock_fd = -1, .w.fd = -1};
  int codec;
  if (parse_opts(argc, argv, &o) < 0 || parse_codec(o.codec, &codec) < 0 ||
      (o.level = level_of(codec, o.level)) < 0)
    return SNAP_EXIT_USAGE;
  m.name = argv[optind + 1];
  if (!cs_name_ok(m.name)) {
    snap_error("'%s' is not a snapshot name ([A-Za-z0-9._-], 1-128, not "
               "starting with '.')",
               m.name);
    return SNAP_EXIT_USAGE;
  }
  int rc = -1;
  /* The input is checked before a new store is made for it. */
  if (open_input(&m, &o, argv[optind + 2]) == 0 &&
      (store_exists(argv[optind]) ||
       check_manifest_size(&m, o.cs.chunk_size ? o.cs.chunk_size
                                               : CS_DEFAULT_CHUNK) == 0) &&
      cs_open(&m.s, argv[optind], &o.cs, 1, CS_LOCK_SHARED, 1) == 0 &&
      check_manifest_size(&m, m.s.info.chunk_size) == 0 &&
      cw_init(&m.w, &m.s, codec, o.level, o.pack_size) == 0 &&
      cw_threads(&m.w, o.threads) == 0 && refuse_existing(&m) == 0 &&
      (!o.base || open_base(&m, o.base) == 0))
    rc = run(&m);
  if (rc < 0)
    cw_abort(&m.w);
  else
    report(&m);
  imp_free(&m);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

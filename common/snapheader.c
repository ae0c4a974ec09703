#include "snapheader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

static const uint8_t nil_id[16];

__attribute__((format(printf, 2, 3))) static int fail(struct ufk_snap_err *err,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

int ufk_snap_is_nil(const uint8_t id[16]) {
  return !memcmp(id, nil_id, 16);
}

void ufk_snap_id_str(const uint8_t id[16], char out[UFK_SNAP_UUID_STR]) {
  uuid_unparse_lower(id, out);
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void decode_mapping(const uint8_t *p, struct ufk_snap_mapping *m) {
  m->offset = get_le64(p);
  m->length = get_le64(p + 8);
  memcpy(m->build_id, p + 16, 16);
  m->storage_offset = get_le64(p + 32);
}

static int check_meta(const struct ufk_snap_header *h, const char *name,
                      struct ufk_snap_err *err) {
  if (h->version < UFK_SNAP_VERSION_MIN || h->version > UFK_SNAP_VERSION_MAX)
    return fail(err, "%s: metadata Version (byte 0) is %llu, expected 1 to 3",
                name, (unsigned long long)h->version);
  if (h->block_size != UFK_SNAP_BLOCK_4K && h->block_size != UFK_SNAP_BLOCK_2M)
    return fail(err,
                "%s: metadata BlockSize (byte 8) is %llu, expected 4096 or "
                "2097152",
                name, (unsigned long long)h->block_size);
  if (h->size == 0) return fail(err, "%s: metadata Size (byte 16) is 0", name);
  if (h->size % h->block_size)
    return fail(err,
                "%s: metadata Size (byte 16) %llu is not a multiple of the "
                "block size %llu",
                name, (unsigned long long)h->size,
                (unsigned long long)h->block_size);
  return 0;
}

/* The where-part of a mapping message: index and byte offset in the file. */
#define MAP_FMT "%s: mapping %zu (byte %llu): "
#define MAP_ARGS(name, i)                                                      \
  name, i,                                                                     \
      (unsigned long long)(UFK_SNAP_META_SIZE + UFK_SNAP_MAPPING_SIZE * (i))

static int check_shape(const struct ufk_snap_header *h, size_t i,
                       const char *name, struct ufk_snap_err *err) {
  const struct ufk_snap_mapping *m = &h->mappings[i];
  unsigned long long bs = h->block_size;
  if (m->length == 0)
    return fail(err, MAP_FMT "Length is 0", MAP_ARGS(name, i));
  if (m->offset % bs)
    return fail(
        err, MAP_FMT "Offset 0x%llx is not a multiple of the block size %llu",
        MAP_ARGS(name, i), (unsigned long long)m->offset, bs);
  if (m->length % bs)
    return fail(
        err, MAP_FMT "Length 0x%llx is not a multiple of the block size %llu",
        MAP_ARGS(name, i), (unsigned long long)m->length, bs);
  if (ufk_snap_is_nil(m->build_id)) return 0;
  if (m->storage_offset % UFK_SNAP_STORAGE_ALIGN)
    return fail(err,
                MAP_FMT "BuildStorageOffset 0x%llx is not a multiple of %u",
                MAP_ARGS(name, i), (unsigned long long)m->storage_offset,
                UFK_SNAP_STORAGE_ALIGN);
  if (m->storage_offset + m->length < m->storage_offset)
    return fail(err,
                MAP_FMT "BuildStorageOffset 0x%llx + Length 0x%llx overflows",
                MAP_ARGS(name, i), (unsigned long long)m->storage_offset,
                (unsigned long long)m->length);
  return 0;
}

/* Each mapping must start where the previous one ended. */
static int check_place(const struct ufk_snap_header *h, size_t i,
                       uint64_t expect, const char *name,
                       struct ufk_snap_err *err) {
  const struct ufk_snap_mapping *m = &h->mappings[i];
  unsigned long long off = m->offset;
  if (i == 0 && off != 0)
    return fail(err,
                MAP_FMT "Offset 0x%llx, but the first mapping must start at 0",
                MAP_ARGS(name, i), off);
  if (i > 0 && off < h->mappings[i - 1].offset)
    return fail(err,
                MAP_FMT
                "Offset 0x%llx is below the Offset 0x%llx of mapping %zu "
                "(not sorted)",
                MAP_ARGS(name, i), off,
                (unsigned long long)h->mappings[i - 1].offset, i - 1);
  if (off < expect)
    return fail(
        err, MAP_FMT "Offset 0x%llx overlaps mapping %zu, which ends at 0x%llx",
        MAP_ARGS(name, i), off, i - 1, (unsigned long long)expect);
  if (off > expect)
    return fail(err,
                MAP_FMT "Offset 0x%llx leaves a gap after mapping %zu, which "
                        "ends at 0x%llx",
                MAP_ARGS(name, i), off, i - 1, (unsigned long long)expect);
  if (m->length > h->size - off)
    return fail(err,
                MAP_FMT "Offset 0x%llx + Length 0x%llx runs past the metadata "
                        "Size 0x%llx",
                MAP_ARGS(name, i), off, (unsigned long long)m->length,
                (unsigned long long)h->size);
  return 0;
}

int ufk_snap_validate(const struct ufk_snap_header *h, const char *name,
                      struct ufk_snap_err *err) {
  if (check_meta(h, name, err) < 0) return -1;
  uint64_t end = 0;
  for (size_t i = 0; i < h->nmappings; i++) {
    if (check_shape(h, i, name, err) < 0 ||
        check_place(h, i, end, name, err) < 0)
      return -1;
    end = h->mappings[i].offset + h->mappings[i].length;
  }
  if (end != h->size)
    return fail(err,
                "%s: the %zu mappings end at 0x%llx and do not cover the "
                "metadata Size 0x%llx",
                name, h->nmappings, (unsigned long long)end,
                (unsigned long long)h->size);
  return 0;
}

static void decode_meta(const uint8_t *p, struct ufk_snap_header *h) {
  h->version = get_le64(p);
  h->block_size = get_le64(p + 8);
  h->size = get_le64(p + 16);
  h->generation = get_le64(p + 24);
  memcpy(h->build_id, p + 32, 16);
  memcpy(h->base_build_id, p + 48, 16);
}

/* No mappings stand for one mapping of the whole memory to this build. */
static int decode_mappings(const uint8_t *p, size_t n,
                           struct ufk_snap_header *h) {
  h->nmappings = n ? n : 1;
  h->mappings = calloc(h->nmappings, sizeof *h->mappings);
  if (!h->mappings) return -1;
  for (size_t i = 0; i < n; i++)
    decode_mapping(p + UFK_SNAP_MAPPING_SIZE * i, &h->mappings[i]);
  if (n == 0) {
    h->mappings[0].length = h->size;
    memcpy(h->mappings[0].build_id, h->build_id, 16);
  }
  return 0;
}

/* What the length and the metadata alone tell: file shape, and no more
 * mappings than blocks (each covers at least one). */
static int check_frame(const uint8_t *meta, size_t len, const char *name,
                       struct ufk_snap_header *h, struct ufk_snap_err *err) {
  if (len < UFK_SNAP_META_SIZE)
    return fail(err, "%s: %zu bytes, shorter than the %u-byte metadata", name,
                len, UFK_SNAP_META_SIZE);
  size_t rest = (len - UFK_SNAP_META_SIZE) % UFK_SNAP_MAPPING_SIZE;
  size_t n = (len - UFK_SNAP_META_SIZE) / UFK_SNAP_MAPPING_SIZE;
  if (rest)
    return fail(err,
                "%s: %zu bytes: mapping %zu (byte %zu) is partial, %zu of "
                "%u bytes",
                name, len, n, len - rest, rest, UFK_SNAP_MAPPING_SIZE);
  decode_meta(meta, h);
  if (check_meta(h, name, err) < 0) return -1;
  if (n > h->size / h->block_size)
    return fail(err,
                "%s: %zu mappings, more than the %llu blocks of the metadata "
                "Size",
                name, n, (unsigned long long)(h->size / h->block_size));
  return 0;
}

int ufk_snap_parse(const void *buf, size_t len, const char *name,
                   struct ufk_snap_header *h, struct ufk_snap_err *err) {
  memset(h, 0, sizeof *h);
  if (check_frame(buf, len, name, h, err) < 0) return -1;
  size_t n = (len - UFK_SNAP_META_SIZE) / UFK_SNAP_MAPPING_SIZE;
  if (decode_mappings((const uint8_t *)buf + UFK_SNAP_META_SIZE, n, h) < 0)
    return fail(err, "%s: out of memory for %zu mappings", name, n);
  if (ufk_snap_validate(h, name, err) < 0) {
    ufk_snap_free(h);
    return -1;
  }
  return 0;
}

static int read_all(int fd, uint8_t *buf, size_t len, size_t at) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, buf + done, len - done, (off_t)(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 ? (errno = EIO, -1) : -1;
    done += (size_t)r;
  }
  return 0;
}

int ufk_snap_load_fd(int fd, const char *path, struct ufk_snap_header *h,
                     struct ufk_snap_err *err) {
  memset(h, 0, sizeof *h);
  struct stat st;
  int bad = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
  if (bad)
    return fail(err, "%s: not a readable regular file: %s", path,
                strerror(bad));
  /* Judge the metadata before reading a file that may be huge garbage. */
  size_t len = (size_t)st.st_size;
  uint8_t meta[UFK_SNAP_META_SIZE];
  size_t first = len < sizeof meta ? len : sizeof meta;
  if (read_all(fd, meta, first, 0) < 0)
    return fail(err, "%s: cannot read: %s", path, strerror(errno));
  if (check_frame(meta, len, path, h, err) < 0) return -1;
  uint8_t *buf = malloc(len);
  if (buf) memcpy(buf, meta, first);
  if (!buf || read_all(fd, buf + first, len - first, first) < 0) {
    int e = buf ? errno : ENOMEM;
    free(buf);
    return fail(err, "%s: cannot read %zu bytes: %s", path, len, strerror(e));
  }
  int rc = ufk_snap_parse(buf, len, path, h, err);
  free(buf);
  return rc;
}

int ufk_snap_load(const char *path, struct ufk_snap_header *h,
                  struct ufk_snap_err *err) {
  memset(h, 0, sizeof *h);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, "%s: cannot open: %s", path, strerror(errno));
  int rc = ufk_snap_load_fd(fd, path, h, err);
  close(fd);
  return rc;
}

void ufk_snap_free(struct ufk_snap_header *h) {
  free(h->mappings);
  h->mappings = NULL;
  h->nmappings = 0;
}

size_t ufk_snap_serial_size(const struct ufk_snap_header *h) {
  return UFK_SNAP_META_SIZE + UFK_SNAP_MAPPING_SIZE * h->nmappings;
}

void ufk_snap_serialise(const struct ufk_snap_header *h, uint8_t *out) {
  put_le64(out, h->version);
  put_le64(out + 8, h->block_size);
  put_le64(out + 16, h->size);
  put_le64(out + 24, h->generation);
  memcpy(out + 32, h->build_id, 16);
  memcpy(out + 48, h->base_build_id, 16);
  for (size_t i = 0; i < h->nmappings; i++) {
    uint8_t *p = out + UFK_SNAP_META_SIZE + UFK_SNAP_MAPPING_SIZE * i;
    const struct ufk_snap_mapping *m = &h->mappings[i];
    put_le64(p, m->offset);
    put_le64(p + 8, m->length);
    memcpy(p + 16, m->build_id, 16);
    put_le64(p + 32, m->storage_offset);
  }
}

static int write_all(int fd, const uint8_t *buf, size_t len) {
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

int ufk_snap_write_fd(const struct ufk_snap_header *h, int fd, const char *name,
                      struct ufk_snap_err *err) {
  size_t len = ufk_snap_serial_size(h);
  uint8_t *buf = malloc(len);
  if (!buf)
    return fail(err, "%s: out of memory for %zu bytes of header", name, len);
  ufk_snap_serialise(h, buf);
  int rc = write_all(fd, buf, len);
  int e = errno;
  free(buf);
  if (rc < 0)
    return fail(err, "%s: cannot write %zu bytes: %s", name, len, strerror(e));
  return 0;
}

long ufk_snap_find(const struct ufk_snap_header *h, uint64_t off) {
  if (off >= h->size || h->nmappings == 0) return -1;
  /* The last mapping starting at or before off. */
  size_t lo = 0, hi = h->nmappings;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (h->mappings[mid].offset <= off)
      lo = mid;
    else
      hi = mid;
  }
  const struct ufk_snap_mapping *m = &h->mappings[lo];
  if (off < m->offset || off - m->offset >= m->length) return -1;
  return (long)lo;
}

static struct ufk_snap_build *find_build(struct ufk_snap_build *b, size_t n,
                                         const uint8_t id[16]) {
  for (size_t i = n; i-- > 0;)
    if (!memcmp(b[i].id, id, 16)) return &b[i];
  return NULL;
}

static void add_use(struct ufk_snap_build *b, const struct ufk_snap_mapping *m,
                    size_t i) {
  uint64_t end = m->storage_offset + m->length;
  if (end > b->need) {
    b->need = end;
    b->need_entry = i;
  }
  b->bytes += m->length;
}

int ufk_snap_builds(const struct ufk_snap_header *h,
                    struct ufk_snap_build **out, size_t *n) {
  struct ufk_snap_build *b = NULL, *last = NULL;
  size_t nb = 0, cap = 0;
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    if (ufk_snap_is_nil(m->build_id)) continue;
    if (!last || memcmp(last->id, m->build_id, 16))
      last = find_build(b, nb, m->build_id);
    if (!last) {
      if (nb == cap) {
        cap = cap ? cap * 2 : 8;
        struct ufk_snap_build *nbuf = realloc(b, cap * sizeof *b);
        if (!nbuf) {
          free(b);
          return -1;
        }
        b = nbuf;
      }
      last = &b[nb++];
      memset(last, 0, sizeof *last);
      memcpy(last->id, m->build_id, 16);
      last->first_entry = i;
    }
    add_use(last, m, i);
  }
  *out = b;
  *n = nb;
  return 0;
}

void ufk_snap_build_index(const struct ufk_snap_header *h,
                          const struct ufk_snap_build *b, size_t nb,
                          uint32_t *out) {
  size_t last = 0;
  for (size_t i = 0; i < h->nmappings; i++) {
    const uint8_t *id = h->mappings[i].build_id;
    out[i] = UFK_SNAP_NO_BUILD;
    if (ufk_snap_is_nil(id) || nb == 0) continue;
    /* Runs of one build are common: start from the last one found. */
    for (size_t k = 0; k < nb; k++, last = (last + 1) % nb)
      if (!memcmp(b[last].id, id, 16)) {
        out[i] = (uint32_t)last;
        break;
      }
  }
}

int ufk_snap_check_build_size(const struct ufk_snap_header *h,
                              const struct ufk_snap_build *b, uint64_t have,
                              const char *name, const char *file,
                              struct ufk_snap_err *err) {
  if (have >= b->need) return 0;
  const struct ufk_snap_mapping *m = &h->mappings[b->need_entry];
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(b->id, id);
  return fail(err,
              "%s: %llu bytes, too short for build %s: mapping %zu of %s "
              "reads 0x%llx bytes at storage offset 0x%llx (needs %llu bytes)",
              file, (unsigned long long)have, id, b->need_entry, name,
              (unsigned long long)m->length,
              (unsigned long long)m->storage_offset,
              (unsigned long long)b->need);
}

char *ufk_snap_expand(const char *tmpl, const uint8_t id[16]) {
  static const char var[] = UFK_SNAP_BUILD_ID_VAR;
  const size_t vlen = sizeof var - 1;
  char ids[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(id, ids);
  size_t count = 0;
  for (const char *p = tmpl; (p = strstr(p, var)); p += vlen)
    count++;
  char *out = malloc(strlen(tmpl) + count * (36 - vlen) + 1);
  if (!out) return NULL;
  char *o = out;
  for (const char *p = tmpl;;) {
    const char *hit = strstr(p, var);
    size_t lit = hit ? (size_t)(hit - p) : strlen(p);
    memcpy(o, p, lit);
    o += lit;
    if (!hit) break;
    memcpy(o, ids, 36);
    o += 36;
    p = hit + vlen;
  }
  *o = 0;
  return out;
}

/* A growable list of mappings. */
struct mlist {
  struct ufk_snap_mapping *m;
  size_t n, cap;
};

static int push(struct mlist *l, const struct ufk_snap_mapping *m) {
  if (m->length == 0) return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct ufk_snap_mapping *nm = realloc(l->m, cap * sizeof *nm);
    if (!nm) return -1;
    l->m = nm;
    l->cap = cap;
  }
  l->m[l->n++] = *m;
  return 0;
}

/* The part of m from s bytes in. */
static struct ufk_snap_mapping shifted(const struct ufk_snap_mapping *m,
                                       uint64_t s) {
  struct ufk_snap_mapping r = *m;
  r.offset += s;
  r.length -= s;
  r.storage_offset += s;
  return r;
}

static struct ufk_snap_mapping left_part(const struct ufk_snap_mapping *m,
                                         uint64_t len) {
  struct ufk_snap_mapping r = *m;
  r.length = len;
  return r;
}

static uint64_t end_of(const struct ufk_snap_mapping *m) {
  return m->offset + m->length;
}

/* One step of the sweep over the current base b and diff d, both nonempty
 * and overlapping.  Returns what to advance: bit 0 base, bit 1 diff, or -1
 * on allocation failure.  *b may be trimmed in place. */
static int merge_overlap(struct mlist *out, struct ufk_snap_mapping *b,
                         const struct ufk_snap_mapping *d) {
  uint64_t bend = end_of(b), dend = end_of(d);
  if (b->offset >= d->offset && bend <= dend) /* base inside diff */
    return 1;
  if (d->offset >= b->offset && dend <= bend) { /* diff inside base */
    struct ufk_snap_mapping left = left_part(b, d->offset - b->offset);
    if (push(out, &left) < 0 || push(out, d) < 0) return -1;
    *b = shifted(b, dend - b->offset);
    return b->length ? 2 : 3;
  }
  if (b->offset > d->offset) { /* base starts inside diff */
    if (push(out, d) < 0) return -1;
    *b = shifted(b, dend - b->offset);
    return 2;
  }
  /* diff starts inside base and runs past it */
  struct ufk_snap_mapping left = left_part(b, d->offset - b->offset);
  return push(out, &left) < 0 ? -1 : 1;
}

static int merge_step(struct mlist *out, struct ufk_snap_mapping *b,
                      const struct ufk_snap_mapping *d) {
  if (b->length == 0) return 1;
  if (d->length == 0) return 2;
  if (end_of(b) <= d->offset) /* base entirely before diff */
    return push(out, b) < 0 ? -1 : 1;
  if (end_of(d) <= b->offset) /* diff entirely before base */
    return push(out, d) < 0 ? -1 : 2;
  return merge_overlap(out, b, d);
}

int ufk_snap_merge(const struct ufk_snap_mapping *base, size_t nbase,
                   const struct ufk_snap_mapping *diff, size_t ndiff,
                   struct ufk_snap_mapping **out, size_t *nout) {
  struct mlist l = {0};
  size_t bi = 0, di = 0;
  struct ufk_snap_mapping cur = {0};
  if (nbase) cur = base[0];
  while (bi < nbase && di < ndiff) {
    int adv = merge_step(&l, &cur, &diff[di]);
    if (adv < 0) goto oom;
    if (adv & 1 && ++bi < nbase) cur = base[bi];
    if (adv & 2) di++;
  }
  /* The current base may have been trimmed; the ones after it are whole. */
  if (bi < nbase && push(&l, &cur) < 0) goto oom;
  for (bi++; bi < nbase; bi++)
    if (push(&l, &base[bi]) < 0) goto oom;
  for (; di < ndiff; di++)
    if (push(&l, &diff[di]) < 0) goto oom;
  *out = l.m;
  *nout = l.n;
  return 0;
oom:
  free(l.m);
  return -1;
}

static int joinable(const struct ufk_snap_mapping *a,
                    const struct ufk_snap_mapping *b) {
  if (memcmp(a->build_id, b->build_id, 16) || end_of(a) != b->offset) return 0;
  /* Same build but storage elsewhere (e2b-dev/infra#2848): keep apart. */
  return ufk_snap_is_nil(a->build_id) ||
         a->storage_offset + a->length == b->storage_offset;
}

size_t ufk_snap_normalize(struct ufk_snap_mapping *m, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (m[i].length == 0) continue;
    if (o > 0 && joinable(&m[o - 1], &m[i]))
      m[o - 1].length += m[i].length;
    else
      m[o++] = m[i];
  }
  return o;
}

static int bit(const uint64_t *bits, uint64_t i) {
  return bits && (bits[i / 64] >> (i % 64) & 1);
}

/* Runs of blocks set in `set` and clear in `clear` (either may be NULL;
 * a NULL set has no bits). */
static int runs_of(const uint64_t *set, const uint64_t *clear, uint64_t nblocks,
                   uint64_t bs, const uint8_t id[16], struct mlist *l) {
  uint64_t storage = 0;
  for (uint64_t i = 0; i < nblocks;) {
    if (!bit(set, i) || bit(clear, i)) {
      i++;
      continue;
    }
    uint64_t start = i;
    while (i < nblocks && bit(set, i) && !bit(clear, i))
      i++;
    struct ufk_snap_mapping m = {.offset = start * bs,
                                 .length = (i - start) * bs,
                                 .storage_offset = storage};
    memcpy(m.build_id, id, 16);
    storage += m.length;
    if (push(l, &m) < 0) return -1;
  }
  return 0;
}

int ufk_snap_runs(const uint64_t *bits, uint64_t nblocks, uint64_t block_size,
                  const uint8_t id[16], struct ufk_snap_mapping **out,
                  size_t *n) {
  struct mlist l = {0};
  if (runs_of(bits, NULL, nblocks, block_size, id, &l) < 0) {
    free(l.m);
    return -1;
  }
  *out = l.m;
  *n = l.n;
  return 0;
}

/* Mappings of the new build's blocks over the parent's. */
static int overlay(const struct ufk_snap_header *parent, const uint8_t id[16],
                   const uint64_t *dirty, const uint64_t *empty,
                   struct mlist *res) {
  uint64_t nblocks = parent->size / parent->block_size;
  struct mlist d = {0}, e = {0};
  struct ufk_snap_mapping *diff = NULL;
  size_t ndiff = 0;
  int rc = -1;
  if (runs_of(dirty, empty, nblocks, parent->block_size, id, &d) < 0 ||
      runs_of(empty, NULL, nblocks, parent->block_size, nil_id, &e) < 0 ||
      ufk_snap_merge(d.m, d.n, e.m, e.n, &diff, &ndiff) < 0 ||
      ufk_snap_merge(parent->mappings, parent->nmappings, diff, ndiff, &res->m,
                     &res->n) < 0)
    goto out;
  res->n = ufk_snap_normalize(res->m, res->n);
  /* A nil mapping's storage offset means nothing; write it as 0. */
  for (size_t i = 0; i < res->n; i++)
    if (ufk_snap_is_nil(res->m[i].build_id)) res->m[i].storage_offset = 0;
  rc = 0;
out:
  free(d.m);
  free(e.m);
  free(diff);
  return rc;
}

int ufk_snap_next(const struct ufk_snap_header *parent,
                  const uint8_t new_id[16], const uint64_t *dirty,
                  const uint64_t *empty, struct ufk_snap_header *out,
                  struct ufk_snap_err *err) {
  struct mlist res = {0};
  memset(out, 0, sizeof *out);
  if (overlay(parent, new_id, dirty, empty, &res) < 0)
    return fail(err, "out of memory merging %zu parent mappings",
                parent->nmappings);
  *out = *parent;
  out->generation = parent->generation + 1;
  memcpy(out->build_id, new_id, 16);
  out->mappings = res.m;
  out->nmappings = res.n;
  if (ufk_snap_validate(out, "new header", err) < 0) {
    ufk_snap_free(out);
    return -1;
  }
  return 0;
}

int ufk_snap_first(uint64_t size, uint64_t block_size, const uint8_t id[16],
                   const uint64_t *dirty, struct ufk_snap_header *out,
                   struct ufk_snap_err *err) {
  struct ufk_snap_mapping zeros = {.length = size};
  struct ufk_snap_header empty = {.version = UFK_SNAP_VERSION_WRITE,
                                  .block_size = block_size,
                                  .size = size,
                                  .nmappings = 1,
                                  .mappings = &zeros};
  if (check_meta(&empty, "new header", err) < 0) return -1;
  if (ufk_snap_next(&empty, id, dirty, NULL, out, err) < 0) return -1;
  out->generation = 0;
  memcpy(out->base_build_id, id, 16);
  return 0;
}

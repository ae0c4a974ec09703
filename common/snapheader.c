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

#include "snapint.h"

#define fail ufk_snap_fail

static const uint8_t nil_id[16];

int ufk_snap_fail(struct ufk_snap_err *err, const char *fmt, ...) {
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

unsigned ufk_snap_format(const struct ufk_snap_header *h) {
  return h->version <= 3 ? (unsigned)h->version
                         : (unsigned)(h->version & 0xFFFF);
}

uint64_t ufk_snap_granule(const struct ufk_snap_header *h) {
  return ufk_snap_format(h) >= 4 ? UFK_SNAP_PAGE : h->block_size;
}

void ufk_snap_decode_mapping(const uint8_t *p, struct ufk_snap_mapping *m) {
  m->offset = ufk_le64(p);
  m->length = ufk_le64(p + 8);
  memcpy(m->build_id, p + 16, 16);
  m->storage_offset = ufk_le64(p + 32);
}

void ufk_snap_encode_mapping(const struct ufk_snap_mapping *m, uint8_t *p) {
  ufk_put64(p, m->offset);
  ufk_put64(p + 8, m->length);
  memcpy(p + 16, m->build_id, 16);
  ufk_put64(p + 32, m->storage_offset);
}

/* Versions 1-3 compare the whole u64; from 4 on E2B reads only the low 16
 * bits and ignores the rest. */
static int version_known(uint64_t v) {
  return (v >= UFK_SNAP_VERSION_MIN && v <= 3) || (v & 0xFFFF) == 4 ||
         (v & 0xFFFF) == 5;
}

int ufk_snap_check_meta(const struct ufk_snap_header *h, const char *name,
                        struct ufk_snap_err *err) {
  if (!version_known(h->version))
    return fail(err, "%s: metadata Version (byte 0) is %llu, expected 1 to 5",
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

/* Where mapping i sits, for messages: its byte in the file (v1-3), in the
 * decompressed inner block (V4), or nowhere (V5 rebuilds the list). */
static const char *map_where(const struct ufk_snap_header *h, size_t i,
                             char *buf, size_t len) {
  unsigned f = ufk_snap_format(h);
  if (f == 5) return "";
  uint64_t at = UFK_SNAP_META_SIZE;
  const char *space = "byte";
  if (f == 4) {
    at = 8; /* nBuilds and nMappings */
    for (size_t k = 0; k < h->nentries; k++)
      at += 64 + 24 * (uint64_t)h->entries[k].nframes;
    space = "inner byte";
  }
  snprintf(buf, len, " (%s %llu)", space,
           (unsigned long long)(at + UFK_SNAP_MAPPING_SIZE * (uint64_t)i));
  return buf;
}

#define MAP_FMT "%s: mapping %zu%s: "
#define MAP_ARGS(name, i) name, i, map_where(h, i, where, sizeof where)

static int check_unit(const struct ufk_snap_header *h, size_t i,
                      const char *field, uint64_t v, const char *name,
                      struct ufk_snap_err *err) {
  char where[48];
  uint64_t unit = ufk_snap_granule(h);
  if (v % unit == 0) return 0;
  return fail(err, MAP_FMT "%s 0x%llx is not a multiple of the %s %llu",
              MAP_ARGS(name, i), field, (unsigned long long)v,
              ufk_snap_format(h) >= 4 ? "page size" : "block size",
              (unsigned long long)unit);
}

static int check_shape(const struct ufk_snap_header *h, size_t i,
                       const char *name, struct ufk_snap_err *err) {
  const struct ufk_snap_mapping *m = &h->mappings[i];
  char where[48];
  if (m->length == 0)
    return fail(err, MAP_FMT "Length is 0", MAP_ARGS(name, i));
  if (check_unit(h, i, "Offset", m->offset, name, err) < 0 ||
      check_unit(h, i, "Length", m->length, name, err) < 0)
    return -1;
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
  char where[48];
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
  if (ufk_snap_check_meta(h, name, err) < 0) return -1;
  if (ufk_snap_format(h) >= 4 && ufk_snap_check_entries(h, name, err) < 0)
    return -1;
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

void ufk_snap_decode_meta(const uint8_t *p, struct ufk_snap_header *h) {
  h->version = ufk_le64(p);
  h->block_size = ufk_le64(p + 8);
  h->size = ufk_le64(p + 16);
  h->generation = ufk_le64(p + 24);
  memcpy(h->build_id, p + 32, 16);
  memcpy(h->base_build_id, p + 48, 16);
}

void ufk_snap_encode_meta(const struct ufk_snap_header *h, uint8_t *p) {
  ufk_put64(p, h->version);
  ufk_put64(p + 8, h->block_size);
  ufk_put64(p + 16, h->size);
  ufk_put64(p + 24, h->generation);
  memcpy(p + 32, h->build_id, 16);
  memcpy(p + 48, h->base_build_id, 16);
}

/* No mappings stand for one mapping of the whole memory to this build. */
static int decode_mappings(const uint8_t *p, size_t n,
                           struct ufk_snap_header *h) {
  h->nmappings = n ? n : 1;
  h->mappings = calloc(h->nmappings, sizeof *h->mappings);
  if (!h->mappings) return -1;
  for (size_t i = 0; i < n; i++)
    ufk_snap_decode_mapping(p + UFK_SNAP_MAPPING_SIZE * i, &h->mappings[i]);
  if (n == 0) {
    h->mappings[0].length = h->size;
    memcpy(h->mappings[0].build_id, h->build_id, 16);
  }
  return 0;
}

/* What the length and the metadata alone tell.  Versions 1-3: the file
 * shape, and no more mappings than blocks (each covers at least one).
 * V4/V5: no longer than the largest inner block could compress to. */
static int check_frame(const uint8_t *meta, size_t len, const char *name,
                       struct ufk_snap_header *h, struct ufk_snap_err *err) {
  if (len < UFK_SNAP_META_SIZE)
    return fail(err, "%s: %zu bytes, shorter than the %u-byte metadata", name,
                len, UFK_SNAP_META_SIZE);
  ufk_snap_decode_meta(meta, h);
  if (ufk_snap_check_meta(h, name, err) < 0) return -1;
  if (ufk_snap_format(h) >= 4) {
    /* LZ4 stores incompressible blocks raw, with a few bytes per block. */
    size_t most = UFK_SNAP_V4_PREFIX + UFK_SNAP_INNER_MAX + (1u << 20);
    if (len > most)
      return fail(err, "%s: %zu bytes, more than a V4/V5 header can hold", name,
                  len);
    return 0;
  }
  size_t rest = (len - UFK_SNAP_META_SIZE) % UFK_SNAP_MAPPING_SIZE;
  size_t n = (len - UFK_SNAP_META_SIZE) / UFK_SNAP_MAPPING_SIZE;
  if (rest)
    return fail(err,
                "%s: %zu bytes: mapping %zu (byte %zu) is partial, %zu of "
                "%u bytes",
                name, len, n, len - rest, rest, UFK_SNAP_MAPPING_SIZE);
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
  if (ufk_snap_format(h) >= 4) {
    if (ufk_snap_parse_container(buf, len, name, h, err) < 0) {
      ufk_snap_free(h);
      return -1;
    }
  } else {
    size_t n = (len - UFK_SNAP_META_SIZE) / UFK_SNAP_MAPPING_SIZE;
    if (decode_mappings((const uint8_t *)buf + UFK_SNAP_META_SIZE, n, h) < 0)
      return fail(err, "%s: out of memory for %zu mappings", name, n);
  }
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
  for (size_t i = 0; i < h->nentries; i++)
    ufk_snap_entry_free(&h->entries[i]);
  free(h->entries);
  h->entries = NULL;
  h->nentries = 0;
}

size_t ufk_snap_serial_size(const struct ufk_snap_header *h) {
  return UFK_SNAP_META_SIZE + UFK_SNAP_MAPPING_SIZE * h->nmappings;
}

void ufk_snap_serialise(const struct ufk_snap_header *h, uint8_t *out) {
  ufk_snap_encode_meta(h, out);
  for (size_t i = 0; i < h->nmappings; i++)
    ufk_snap_encode_mapping(&h->mappings[i], out + UFK_SNAP_META_SIZE +
                                                 UFK_SNAP_MAPPING_SIZE * i);
}

int ufk_snap_encode(const struct ufk_snap_header *h, uint8_t **out, size_t *len,
                    struct ufk_snap_err *err) {
  if (ufk_snap_format(h) >= 4)
    return ufk_snap_encode_container(h, out, len, err);
  *len = ufk_snap_serial_size(h);
  if (!(*out = malloc(*len)))
    return fail(err, "out of memory for %zu bytes of header", *len);
  ufk_snap_serialise(h, *out);
  return 0;
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
  uint8_t *buf;
  size_t len;
  if (ufk_snap_encode(h, &buf, &len, err) < 0) return -1;
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

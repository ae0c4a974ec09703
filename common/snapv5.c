/* The V5 mapping section: a build-id table and four varint columns, in 4 KiB
 * pages, with nil runs left out (E2B serialization_v5.go, compact.go). */
#include <stdlib.h>
#include <string.h>

#include "snapint.h"

#define fail ufk_snap_fail
#define U32_MAX 0xFFFFFFFFull
/* E2B's memory bound on N: 256 MiB / 42. */
#define N_MEMORY_MAX ((256u << 20) / 42)

enum { VARINT_OK, VARINT_SHORT, VARINT_OVERFLOW };

/* Go's binary.Uvarint: at most 10 bytes, a 10th byte above 1 overflows. */
static int uvarint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned i = 0, s = 0; i < 10; i++, s += 7) {
    if (*pos >= len) return VARINT_SHORT;
    uint8_t b = p[(*pos)++];
    if (i == 9 && b > 1) return VARINT_OVERFLOW;
    if (b < 0x80) {
      *v = x | (uint64_t)b << s;
      return VARINT_OK;
    }
    x |= (uint64_t)(b & 0x7f) << s;
  }
  return VARINT_OVERFLOW;
}

static int64_t unzigzag(uint64_t z) {
  return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* Decoding state: where we are and the message prefix parts. */
struct v5 {
  const uint8_t *p;
  size_t len, pos, base;
  const char *name;
  struct ufk_snap_err *err;
};

static int column_varint(struct v5 *s, const char *col, uint32_t i,
                         uint64_t *v) {
  size_t at = s->pos;
  int rc = uvarint(s->p, s->len, &s->pos, v);
  if (rc == VARINT_OK) return 0;
  return fail(s->err, "%s: V5 %s column, entry %u (inner byte %zu): varint %s",
              s->name, col, i, s->base + at,
              rc == VARINT_SHORT ? "cut short by the end of the block"
                                 : "overflows 64 bits");
}

struct v5_entry {
  uint64_t off, len; /* pages */
  int64_t storage;   /* pages */
  uint32_t build;
};

static int entry_fail(struct v5 *s, const char *col, uint32_t i, size_t at,
                      const char *what, unsigned long long v) {
  return fail(s->err, "%s: V5 %s column, entry %u (inner byte %zu): %s %llu",
              s->name, col, i, s->base + at, what, v);
}

static int read_columns(struct v5 *s, struct v5_entry *e, uint32_t n,
                        uint32_t m) {
  uint64_t v, run = 0;
  int64_t srun = 0;
  for (uint32_t i = 0; i < n; i++) {
    size_t at = s->pos;
    if (column_varint(s, "offset", i, &v) < 0) return -1;
    if (v > U32_MAX || (run += v) > U32_MAX)
      return entry_fail(s, "offset", i, at, "delta exceeds 2^32-1 pages:", v);
    e[i].off = run;
  }
  for (uint32_t i = 0; i < n; i++) {
    size_t at = s->pos;
    if (column_varint(s, "length", i, &e[i].len) < 0) return -1;
    if (e[i].len == 0 || e[i].len > U32_MAX)
      return entry_fail(s, "length", i, at, "length must be 1 to 2^32-1, is",
                        e[i].len);
  }
  for (uint32_t i = 0; i < n; i++) {
    size_t at = s->pos;
    if (column_varint(s, "storage", i, &v) < 0) return -1;
    int64_t d = unzigzag(v);
    /* |d| beyond 2^33 can only leave the range; the bound avoids overflow. */
    if (d > (int64_t)(2 * U32_MAX) || d < -(int64_t)(2 * U32_MAX) ||
        (srun += d) < 0 || srun > (int64_t)U32_MAX)
      return entry_fail(s, "storage", i, at,
                        "running storage page leaves [0, 2^32-1] at delta",
                        (unsigned long long)d);
    e[i].storage = srun;
  }
  for (uint32_t i = 0; i < n; i++) {
    size_t at = s->pos;
    if (column_varint(s, "build", i, &v) < 0) return -1;
    if (v >= m)
      return entry_fail(s, "build", i, at,
                        "index past the table of builds:", v);
    e[i].build = (uint32_t)v;
  }
  return 0;
}

static void put_run(struct ufk_snap_mapping *m, uint64_t off, uint64_t len,
                    const uint8_t *id, uint64_t storage) {
  m->offset = off * UFK_SNAP_PAGE;
  m->length = len * UFK_SNAP_PAGE;
  if (id) memcpy(m->build_id, id, 16);
  m->storage_offset = storage * UFK_SNAP_PAGE;
}

/* The full mapping: encoded entries with nil runs between them. */
static int rebuild(struct v5 *s, const struct v5_entry *e, uint32_t n,
                   const uint8_t *table, struct ufk_snap_header *h) {
  uint64_t pages = (h->size + UFK_SNAP_PAGE - 1) / UFK_SNAP_PAGE, cur = 0;
  struct ufk_snap_mapping *m = calloc(2 * (size_t)n + 1, sizeof *m);
  if (!m) return fail(s->err, "%s: out of memory for %u mappings", s->name, n);
  h->mappings = m;
  size_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (e[i].off < cur)
      return fail(s->err,
                  "%s: V5 entry %u: starts at page %llu, inside the previous "
                  "entry, which ends at page %llu (overlap)",
                  s->name, i, (unsigned long long)e[i].off,
                  (unsigned long long)cur);
    if (e[i].off + e[i].len > pages)
      return fail(s->err,
                  "%s: V5 entry %u: pages [%llu, %llu) run past the %llu "
                  "pages of the metadata Size",
                  s->name, i, (unsigned long long)e[i].off,
                  (unsigned long long)(e[i].off + e[i].len),
                  (unsigned long long)pages);
    if (e[i].off > cur) put_run(&m[k++], cur, e[i].off - cur, NULL, 0);
    put_run(&m[k++], e[i].off, e[i].len, table + 16 * (size_t)e[i].build,
            (uint64_t)e[i].storage);
    cur = e[i].off + e[i].len;
  }
  if (cur < pages) put_run(&m[k++], cur, pages - cur, NULL, 0);
  h->nmappings = k;
  return 0;
}

static int read_table(struct v5 *s, uint32_t *m, const uint8_t **table) {
  if (s->len < 4)
    return fail(s->err, "%s: inner byte %zu: too short for the V5 build count",
                s->name, s->base);
  *m = ufk_le32(s->p);
  if (*m > UFK_SNAP_V5_MAX_BUILDS || 16ull * *m > s->len - 4)
    return fail(s->err,
                "%s: V5 build count M (inner byte %zu) is %u: more than %u or "
                "than the %zu bytes left hold",
                s->name, s->base, *m, UFK_SNAP_V5_MAX_BUILDS, s->len - 4);
  *table = s->p + 4;
  for (uint32_t i = 0; i < *m; i++)
    if (ufk_snap_is_nil(*table + 16 * (size_t)i))
      return fail(s->err, "%s: V5 build table entry %u (inner byte %zu) is nil",
                  s->name, i, s->base + 4 + 16 * (size_t)i);
  s->pos = 4 + 16 * (size_t)*m;
  return 0;
}

static int read_count(struct v5 *s, uint32_t *n) {
  size_t at = s->pos;
  if (s->len - at < 4)
    return fail(s->err,
                "%s: inner byte %zu: too short for the V5 entry count N",
                s->name, s->base + at);
  *n = ufk_le32(s->p + at);
  s->pos += 4;
  if (*n > UFK_SNAP_V5_MAX_ENTRIES || *n > N_MEMORY_MAX ||
      4ull * *n > s->len - s->pos)
    return fail(s->err,
                "%s: V5 entry count N (inner byte %zu) is %u: more than %u or "
                "than the %zu bytes left hold",
                s->name, s->base + at, *n, N_MEMORY_MAX, s->len - s->pos);
  return 0;
}

int ufk_snap_parse_v5(const uint8_t *p, size_t len, size_t base,
                      const char *name, struct ufk_snap_header *h, size_t *used,
                      struct ufk_snap_err *err) {
  struct v5 s = {.p = p, .len = len, .base = base, .name = name, .err = err};
  uint32_t m = 0, n = 0;
  const uint8_t *table = NULL;
  if (read_table(&s, &m, &table) < 0 || read_count(&s, &n) < 0) return -1;
  struct v5_entry *e = calloc(n ? n : 1, sizeof *e);
  if (!e) return fail(err, "%s: out of memory for %u V5 entries", name, n);
  int rc = read_columns(&s, e, n, m);
  if (rc == 0) rc = rebuild(&s, e, n, table, h);
  free(e);
  *used = s.pos;
  return rc;
}

static void put_uvarint(uint8_t *out, size_t *pos, uint64_t v) {
  do {
    uint8_t b = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (out) out[*pos] = (uint8_t)(b | (v ? 0x80 : 0));
    (*pos)++;
  } while (v);
}

static uint64_t zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* The build-id table in order of first appearance, and each non-nil
 * mapping's index in it. */
struct table {
  uint8_t (*ids)[16];
  uint32_t m, cap;
};

static int64_t table_index(struct table *t, const uint8_t *id) {
  for (uint32_t k = t->m; k-- > 0;)
    if (!memcmp(t->ids[k], id, 16)) return k;
  if (t->m == t->cap) {
    uint32_t cap = t->cap ? 2 * t->cap : 16;
    void *n = realloc(t->ids, cap * sizeof *t->ids);
    if (!n) return -1;
    t->ids = n;
    t->cap = cap;
  }
  memcpy(t->ids[t->m], id, 16);
  return t->m++;
}

static void put_column(const struct ufk_snap_header *h, int col,
                       const uint32_t *idx, uint8_t *out, size_t *pos) {
  uint64_t prev = 0;
  int64_t sprev = 0;
  for (size_t i = 0, k = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *e = &h->mappings[i];
    if (ufk_snap_is_nil(e->build_id)) continue;
    uint64_t off = e->offset / UFK_SNAP_PAGE;
    int64_t st = (int64_t)(e->storage_offset / UFK_SNAP_PAGE);
    if (col == 0) put_uvarint(out, pos, off - prev);
    if (col == 1) put_uvarint(out, pos, e->length / UFK_SNAP_PAGE);
    if (col == 2) put_uvarint(out, pos, zigzag(st - sprev));
    if (col == 3) put_uvarint(out, pos, idx[k]);
    prev = off;
    sprev = st;
    k++;
  }
}

size_t ufk_snap_encode_v5(const struct ufk_snap_header *h, uint8_t *out) {
  struct table t = {0};
  uint32_t *idx = malloc((h->nmappings + 1) * sizeof *idx);
  size_t n = 0, pos = SIZE_MAX;
  if (!idx) return SIZE_MAX;
  for (size_t i = 0; i < h->nmappings; i++) {
    if (ufk_snap_is_nil(h->mappings[i].build_id)) continue;
    int64_t k = table_index(&t, h->mappings[i].build_id);
    if (k < 0) goto out;
    idx[n++] = (uint32_t)k;
  }
  if (out) {
    ufk_put32(out, t.m);
    if (t.m) memcpy(out + 4, t.ids, 16 * (size_t)t.m);
    ufk_put32(out + 4 + 16 * (size_t)t.m, (uint32_t)n);
  }
  pos = 8 + 16 * (size_t)t.m;
  for (int col = 0; col < 4; col++)
    put_column(h, col, idx, out, &pos);
out:
  free(t.ids);
  free(idx);
  return pos;
}

/* store: prefetching chunks (prefetch.h) into the chunk cache. */
#include "prefetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "layer.h"

static int by_place(const void *a, const void *b, void *arg) {
  const struct store *s = arg;
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  if (s->pack_of[x] != s->pack_of[y])
    return s->pack_of[x] < s->pack_of[y] ? -1 : 1;
  return s->entry[x]->offset < s->entry[y]->offset
             ? -1
             : s->entry[x]->offset > s->entry[y]->offset;
}

/* Claims the stored chunks of [first, last] that are neither held nor
 * being fetched; their numbers in *out, in pack order. */
static size_t claim(struct store *s, uint64_t first, uint64_t last,
                    uint64_t *out) {
  size_t n = 0;
  for (uint64_t i = first; i <= last; i++)
    if (s->entry[i]) out[n++] = i;
  n = ccache_claim(&s->cache, out, n, s->m.chunk_size);
  qsort_r(out, n, sizeof *out, by_place, s);
  return n;
}

/* How many of the chunks c[0..n) one request of their pack covers. */
static size_t piece(const struct store *s, const uint64_t *c, size_t n) {
  const struct ufk_store_entry *a = s->entry[c[0]];
  uint64_t end = a->offset + a->stored_len;
  size_t k = 1;
  for (; k < n; k++) {
    const struct ufk_store_entry *e = s->entry[c[k]];
    uint64_t e_end = e->offset + e->stored_len;
    if (s->pack_of[c[k]] != s->pack_of[c[0]]) break;
    /* Equal chunks share their stored bytes: one fetch serves them all. */
    if (e->offset < end) {
      if (e_end > end) break;
      continue;
    }
    if (e->offset - end > PACK_GAP_MAX || e_end - a->offset > PACK_REQUEST_MAX)
      break;
    end = e_end;
  }
  return k;
}

/* Decodes chunk c[k] of a piece fetched into buf (NULL: not fetched) into
 * a new buffer, checked; NULL if it cannot be had.  A chunk equal to the one
 * before it (one stored copy, sorted next to each other) is that chunk's
 * bytes again: neither decoded nor checked twice (a sealed chunk is
 * decrypted in place, once). */
static uint8_t *take_chunk(struct store *s, const uint64_t *c, size_t k,
                           uint8_t *buf, const uint8_t *before, int *rc) {
  const struct ufk_store_entry *e = s->entry[c[k]], *a = s->entry[c[0]];
  int again = k > 0 && s->entry[c[k - 1]] == e;
  if (!buf || (again && !before)) return NULL;
  uint8_t *out = ccache_buf(&s->cache);
  if (!out) {
    *rc = ufk_fail(host, ENOMEM, "out of memory");
  } else if (again) {
    memcpy(out, before, e->raw_len);
  } else if (store_check_chunk(s, c[k], buf + (e->offset - a->offset), out) <
             0) {
    /* The bytes of a failed chunk are never kept: a read fetches it again
     * and fails or succeeds on its own. */
    ccache_unbuf(&s->cache, out);
    out = NULL;
    *rc = -1;
  }
  return out;
}

/* Fetches chunks c[0..n) (one piece) in one request and caches each that
 * passes its check.  Returns 0, or -1 if any could not be had. */
static int fetch_piece(struct store *s, const uint64_t *c, size_t n) {
  const struct ufk_store_entry *a = s->entry[c[0]], *z = s->entry[c[n - 1]];
  uint64_t len = z->offset + z->stored_len - a->offset;
  uint8_t *buf = malloc(len);
  int rc = buf ? 0 : ufk_fail(host, ENOMEM, "out of memory");
  if (rc == 0 && obj_read(&s->packs[s->pack_of[c[0]]].obj, buf, len, a->offset,
                          UFK_READ_PREFETCH) < 0) {
    rc = -1;
    free(buf);
    buf = NULL;
  }
  /* Each chunk goes to the cache once the next is decoded (the cache may
   * drop it at once). */
  uint8_t *before = NULL;
  for (size_t k = 0; k < n; k++) {
    uint8_t *out = take_chunk(s, c, k, buf, before, &rc);
    if (k > 0)
      ccache_done(&s->cache, c[k - 1], before, s->entry[c[k - 1]]->raw_len);
    before = out;
  }
  ccache_done(&s->cache, c[n - 1], before, z->raw_len);
  free(buf);
  return rc;
}

int store_prefetch(void *inst, uint64_t off, uint64_t len) {
  struct store *s = inst;
  if (!len || off >= s->m.image_size) return 0;
  if (len > s->m.image_size - off) len = s->m.image_size - off;
  if (!ccache_on(&s->cache)) return 0; /* nowhere to keep them */
  uint64_t first = off / s->m.chunk_size,
           last = (off + len - 1) / s->m.chunk_size;
  uint64_t *c = malloc((last - first + 1) * sizeof *c);
  if (!c) return ufk_fail(host, ENOMEM, "out of memory");
  size_t n = claim(s, first, last, c), k = 0;
  int rc = 0;
  while (k < n) {
    size_t m = piece(s, c + k, n - k);
    if (fetch_piece(s, c + k, m) < 0) rc = -1;
    k += m;
  }
  free(c);
  return rc;
}

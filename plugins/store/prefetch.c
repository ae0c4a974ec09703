/* store: prefetching chunks (prefetch.h).  A table with one slot per chunk
 * of the snapshot, made at the first prefetch, tells whether the chunk is
 * held (decoded and checked), being fetched (readers wait for that fetch),
 * or neither.  Held chunks are dropped oldest first past HELD_MAX_BYTES. */
#include "prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "layer.h"

enum { H_NONE, H_FETCHING, H_HELD };

struct slot {
  uint8_t state;
  uint8_t *data;  /* H_HELD: the decoded chunk */
  uint64_t older; /* H_HELD: the next held after it, oldest first; or NIL */
};

#define NIL UINT64_MAX

struct held {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct slot *slots; /* m.nchunks */
  uint64_t oldest, newest, bytes;
};

static struct held *held_get(struct store *s) {
  return __atomic_load_n(&s->held, __ATOMIC_ACQUIRE);
}

/* The table, made once by the first prefetch. */
static struct held *held_make(struct store *s) {
  static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&once);
  struct held *h = s->held;
  if (!h && (h = calloc(1, sizeof *h)) &&
      !(h->slots = calloc(s->m.nchunks ? s->m.nchunks : 1, sizeof *h->slots))) {
    free(h);
    h = NULL;
  }
  if (h && !s->held) {
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->oldest = h->newest = NIL;
    __atomic_store_n(&s->held, h, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&once);
  return h;
}

static uint64_t raw_len(const struct store *s, uint64_t i) {
  return s->entry[i]->raw_len;
}

/* Lock held: chunk i (fetched, or NULL) is held, or forgotten. */
static void settle(struct store *s, struct held *h, uint64_t i, uint8_t *data) {
  struct slot *sl = &h->slots[i];
  sl->state = data ? H_HELD : H_NONE;
  sl->data = data;
  sl->older = NIL;
  if (data) {
    if (h->newest != NIL)
      h->slots[h->newest].older = i;
    else
      h->oldest = i;
    h->newest = i;
    h->bytes += raw_len(s, i);
  }
  while (h->bytes > HELD_MAX_BYTES && h->oldest != NIL && h->oldest != i) {
    struct slot *o = &h->slots[h->oldest];
    h->bytes -= raw_len(s, h->oldest);
    free(o->data);
    o->data = NULL;
    o->state = H_NONE;
    h->oldest = o->older;
  }
  pthread_cond_broadcast(&h->cond);
}

int held_serve(struct store *s, uint64_t i, uint64_t shift, uint8_t *dst,
               uint64_t n) {
  struct held *h = held_get(s);
  if (!h) return 0;
  pthread_mutex_lock(&h->lock);
  while (h->slots[i].state == H_FETCHING)
    pthread_cond_wait(&h->cond, &h->lock);
  int r = 2;
  if (h->slots[i].state == H_HELD) {
    memcpy(dst, h->slots[i].data + shift, n);
    r = 1;
  } else {
    h->slots[i].state = H_FETCHING;
  }
  pthread_mutex_unlock(&h->lock);
  return r;
}

void held_done(struct store *s, uint64_t i, const uint8_t *chunk) {
  struct held *h = held_get(s);
  uint8_t *copy = chunk ? malloc(raw_len(s, i)) : NULL;
  if (copy) memcpy(copy, chunk, raw_len(s, i));
  pthread_mutex_lock(&h->lock);
  settle(s, h, i, copy);
  pthread_mutex_unlock(&h->lock);
}

/* ---- prefetching ---- */

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
static size_t claim(struct store *s, struct held *h, uint64_t first,
                    uint64_t last, uint64_t *out) {
  size_t n = 0;
  pthread_mutex_lock(&h->lock);
  for (uint64_t i = first; i <= last; i++)
    if (s->entry[i] && h->slots[i].state == H_NONE) {
      h->slots[i].state = H_FETCHING;
      out[n++] = i;
    }
  pthread_mutex_unlock(&h->lock);
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

/* Fetches chunks c[0..n) (one piece) in one request and holds each that
 * passes its check.  Returns 0, or -1 if any could not be had. */
static int fetch_piece(struct store *s, struct held *h, const uint64_t *c,
                       size_t n) {
  const struct ufk_store_entry *a = s->entry[c[0]], *z = s->entry[c[n - 1]];
  uint64_t len = z->offset + z->stored_len - a->offset;
  uint8_t *buf = malloc(len);
  int got = buf ? 0 : ufk_fail(host, ENOMEM, "out of memory");
  if (got == 0)
    got = obj_read(&s->packs[s->pack_of[c[0]]].obj, buf, len, a->offset,
                   UFK_READ_PREFETCH);
  int rc = got;
  for (size_t k = 0; k < n; k++) {
    const struct ufk_store_entry *e = s->entry[c[k]];
    uint8_t *out = got == 0 ? malloc(e->raw_len) : NULL;
    if (got == 0 && !out) rc = ufk_fail(host, ENOMEM, "out of memory");
    /* The bytes of a failed chunk are never held: a read fetches it again
     * and fails or succeeds on its own. */
    if (out &&
        store_check_chunk(s, c[k], buf + (e->offset - a->offset), out) < 0) {
      free(out);
      out = NULL;
      rc = -1;
    }
    pthread_mutex_lock(&h->lock);
    settle(s, h, c[k], out);
    pthread_mutex_unlock(&h->lock);
  }
  free(buf);
  return rc;
}

int store_prefetch(void *inst, uint64_t off, uint64_t len) {
  struct store *s = inst;
  if (!len || off >= s->m.image_size) return 0;
  if (len > s->m.image_size - off) len = s->m.image_size - off;
  struct held *h = held_make(s);
  uint64_t first = off / s->m.chunk_size,
           last = (off + len - 1) / s->m.chunk_size;
  uint64_t *c = malloc((last - first + 1) * sizeof *c);
  if (!h || !c) {
    free(c);
    return ufk_fail(host, ENOMEM, "out of memory");
  }
  size_t n = claim(s, h, first, last, c), k = 0;
  int rc = 0;
  while (k < n) {
    size_t m = piece(s, c + k, n - k);
    if (fetch_piece(s, h, c + k, m) < 0) rc = -1;
    k += m;
  }
  free(c);
  return rc;
}

void held_free(struct store *s) {
  struct held *h = s->held;
  if (!h) return;
  for (uint64_t i = 0; i < s->m.nchunks; i++)
    free(h->slots[i].data);
  free(h->slots);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
  free(h);
  s->held = NULL;
}

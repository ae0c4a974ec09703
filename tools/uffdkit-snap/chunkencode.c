/* The import's chunk encoders (chunkencode.h). */
#include "chunkencode.h"

#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "snap.h"

enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

/* Chunks in flight per encoder: enough that none waits for the writer,
 * bounded in memory for large chunks. */
#define SLOTS_PER_THREAD 4u
#define RING_BYTES_MAX ((uint64_t)256 << 20)

static struct cenc_slot *at(struct cencoder *c, unsigned k) {
  return &c->slot[(c->head + k) % c->nslots];
}

/* Lock held: the oldest chunk waiting for an encoder, or NULL. */
static struct cenc_slot *next_ready(struct cencoder *c) {
  for (unsigned k = 0; k < c->count; k++)
    if (at(c, k)->state == SLOT_READY) return at(c, k);
  return NULL;
}

/* Lock held: encodes chunk s, which was ready, without the lock. */
static void encode(struct cencoder *c, struct cenc_slot *s) {
  s->state = SLOT_BUSY;
  pthread_mutex_unlock(&c->lock);
  s->rc = ufk_store_chunk_encode(c->keys, c->codec, c->level, s->id, s->sums,
                                 s->raw, s->len, s->out, &s->e, &s->err);
  pthread_mutex_lock(&c->lock);
  s->state = SLOT_DONE;
  /* Wake-ups cost system calls: only the writer waiting for this one. */
  if (c->waiting && s == at(c, 0)) pthread_cond_signal(&c->done);
}

static void *encoder(void *arg) {
  struct cencoder *c = arg;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    struct cenc_slot *s;
    while (!c->stop && !(s = next_ready(c))) {
      c->idle++;
      pthread_cond_wait(&c->work, &c->lock);
      c->idle--;
    }
    if (c->stop) break;
    encode(c, s);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

static int make_slots(struct cencoder *c, uint32_t chunk_size, int threads) {
  uint64_t per = chunk_size + ufk_store_encode_bound(chunk_size);
  c->nslots = SLOTS_PER_THREAD * (unsigned)threads;
  if (c->nslots * per > RING_BYTES_MAX)
    c->nslots = (unsigned)(RING_BYTES_MAX / per);
  if (c->nslots < 2) c->nslots = 2;
  c->slot = calloc(c->nslots, sizeof *c->slot);
  if (!c->slot) return -1;
  for (unsigned i = 0; i < c->nslots; i++) {
    c->slot[i].raw = malloc(chunk_size);
    c->slot[i].out = malloc(ufk_store_encode_bound(chunk_size));
    c->slot[i].sums_buf =
        malloc(ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, chunk_size));
    if (!c->slot[i].raw || !c->slot[i].out || !c->slot[i].sums_buf) return -1;
  }
  return 0;
}

int cenc_start(struct cencoder *c, const struct ufk_store_keys *keys, int codec,
               int level, uint32_t chunk_size, int threads) {
  memset(c, 0, sizeof *c);
  c->keys = keys;
  c->codec = codec;
  c->level = level;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->work, NULL);
  pthread_cond_init(&c->done, NULL);
  c->threads = calloc((size_t)threads, sizeof *c->threads);
  if (!c->threads || make_slots(c, chunk_size, threads) < 0) {
    snap_error("out of memory for %d encoders", threads);
    cenc_stop(c);
    return -1;
  }
  for (; c->nthreads < threads - 1; c->nthreads++)
    if (pthread_create(&c->threads[c->nthreads], NULL, encoder, c)) {
      snap_error("cannot start encoder thread %d", c->nthreads + 1);
      cenc_stop(c);
      return -1;
    }
  return 0;
}

int cenc_put(struct cencoder *c, const uint8_t id[UFK_STORE_ID],
             const uint8_t *sums, const void *raw, uint32_t len,
             uint32_t *pack) {
  pthread_mutex_lock(&c->lock);
  int full = c->count == c->nslots;
  if (!full) {
    struct cenc_slot *s = at(c, c->count++);
    memcpy(s->id, id, UFK_STORE_ID);
    memcpy(s->raw, raw, len);
    s->sums = sums ? s->sums_buf : NULL;
    if (sums)
      memcpy(s->sums, sums, ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, len));
    s->len = len;
    s->pack = pack;
    s->state = SLOT_READY;
    if (c->idle) pthread_cond_signal(&c->work);
  }
  pthread_mutex_unlock(&c->lock);
  return full;
}

struct cenc_slot *cenc_oldest(struct cencoder *c) {
  pthread_mutex_lock(&c->lock);
  struct cenc_slot *s = c->count ? at(c, 0) : NULL;
  /* The writer encodes what is ready rather than wait: it is one of the
   * threads the import was given. */
  struct cenc_slot *r;
  while (s && s->state != SLOT_DONE) {
    if ((r = next_ready(c))) {
      encode(c, r);
      continue;
    }
    c->waiting = 1;
    pthread_cond_wait(&c->done, &c->lock);
    c->waiting = 0;
  }
  pthread_mutex_unlock(&c->lock);
  return s;
}

void cenc_drop(struct cencoder *c) {
  pthread_mutex_lock(&c->lock);
  at(c, 0)->state = SLOT_FREE;
  c->head = (c->head + 1) % c->nslots;
  c->count--;
  pthread_mutex_unlock(&c->lock);
}

int cenc_find(struct cencoder *c, const uint8_t id[UFK_STORE_ID]) {
  /* Only the caller's thread changes ids and the count. */
  for (unsigned k = 0; k < c->count; k++)
    if (!memcmp(at(c, k)->id, id, UFK_STORE_ID)) return (int)k;
  return -1;
}

void cenc_stop(struct cencoder *c) {
  pthread_mutex_lock(&c->lock);
  c->stop = 1;
  pthread_cond_broadcast(&c->work);
  pthread_mutex_unlock(&c->lock);
  for (int i = 0; i < c->nthreads; i++)
    pthread_join(c->threads[i], NULL);
  for (unsigned i = 0; c->slot && i < c->nslots; i++) {
    free(c->slot[i].raw);
    free(c->slot[i].out);
    free(c->slot[i].sums_buf);
  }
  free(c->slot);
  free(c->threads);
  pthread_cond_destroy(&c->done);
  pthread_cond_destroy(&c->work);
  pthread_mutex_destroy(&c->lock);
  memset(c, 0, sizeof *c);
}

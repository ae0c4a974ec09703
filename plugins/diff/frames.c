#include "frames.h"

#include <stdlib.h>

enum { S_FREE, S_DECODING, S_VALID };

int fcache_init(struct fcache *c, uint64_t budget, uint32_t max_frame) {
  c->slot_bytes = max_frame ? max_frame : 1;
  c->nslots = budget / c->slot_bytes < 2 ? 2 : budget / c->slot_bytes;
  c->slots = calloc(c->nslots, sizeof *c->slots);
  if (!c->slots) return -1;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  return 0;
}

void fcache_free(struct fcache *c) {
  if (!c->slots) return;
  for (size_t i = 0; i < c->nslots; i++)
    free(c->slots[i].buf);
  free(c->slots);
  c->slots = NULL;
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
}

static long find(const struct fcache *c, const void *owner, uint64_t frame) {
  for (size_t i = 0; i < c->nslots; i++)
    if (c->slots[i].state != S_FREE && c->slots[i].owner == owner &&
        c->slots[i].frame == frame)
      return (long)i;
  return -1;
}

/* A free slot, or the least recently used valid one nobody reads. */
static long victim(const struct fcache *c) {
  long best = -1;
  for (size_t i = 0; i < c->nslots; i++) {
    const struct fslot *s = &c->slots[i];
    if (s->state == S_FREE) return (long)i;
    if (s->state == S_VALID && s->refs == 0 &&
        (best < 0 || s->used < c->slots[best].used))
      best = (long)i;
  }
  return best;
}

/* Decodes outside the lock; waiters sleep until the slot settles. */
static long decode_into(struct fcache *c, long i, fcache_decode_fn fn,
                        void *opaque) {
  struct fslot *s = &c->slots[i];
  pthread_mutex_unlock(&c->lock);
  int rc = -1;
  if (!s->buf) s->buf = malloc(c->slot_bytes);
  if (s->buf) rc = fn(opaque, s->buf);
  pthread_mutex_lock(&c->lock);
  s->state = rc == 0 ? S_VALID : S_FREE;
  if (rc < 0) s->refs = 0;
  pthread_cond_broadcast(&c->cond);
  if (rc == 0 && c->decoded)
    __atomic_fetch_add(c->decoded, 1, __ATOMIC_RELAXED);
  return rc == 0 ? i : -1;
}

long fcache_get(struct fcache *c, const void *owner, uint64_t frame,
                fcache_decode_fn fn, void *opaque) {
  pthread_mutex_lock(&c->lock);
  long i;
  for (;;) {
    i = find(c, owner, frame);
    if (i >= 0 && c->slots[i].state == S_VALID) {
      if (c->hits) __atomic_fetch_add(c->hits, 1, __ATOMIC_RELAXED);
      break;
    }
    /* Being decoded, or every slot busy: wait.  A failed decode frees its
     * slot, and the next waiter decodes again (reporting its own error). */
    if (i < 0 && (i = victim(c)) >= 0) {
      struct fslot *s = &c->slots[i];
      s->owner = owner;
      s->frame = frame;
      s->state = S_DECODING;
      s->refs = 1;
      s->used = ++c->tick;
      i = decode_into(c, i, fn, opaque);
      pthread_mutex_unlock(&c->lock);
      return i;
    }
    pthread_cond_wait(&c->cond, &c->lock);
  }
  c->slots[i].refs++;
  c->slots[i].used = ++c->tick;
  pthread_mutex_unlock(&c->lock);
  return i;
}

void fcache_put(struct fcache *c, long i) {
  pthread_mutex_lock(&c->lock);
  if (--c->slots[i].refs == 0) pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

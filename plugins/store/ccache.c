#include "recent.h"

#include <stdlib.h>
#include <string.h>

int recent_init(struct recent *r, uint64_t bytes, uint32_t chunk_size) {
  uint64_t n = chunk_size ? bytes / chunk_size : 0;
  r->n = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  r->chunk_size = chunk_size;
  r->slots = NULL;
  if (!r->n) return 0;
  if (!(r->slots = calloc(r->n, sizeof *r->slots))) {
    r->n = 0;
    return -1;
  }
  for (uint32_t i = 0; i < r->n; i++)
    pthread_mutex_init(&r->slots[i].lock, NULL);
  return 0;
}

void recent_free(struct recent *r) {
  for (uint32_t i = 0; i < r->n; i++) {
    pthread_mutex_destroy(&r->slots[i].lock);
    free(r->slots[i].buf);
  }
  free(r->slots);
  r->slots = NULL;
  r->n = 0;
}

/* The copy is made under the slot's lock: one chunk at most, and readers
 * of other slots are not held. */
int recent_get(struct recent *r, uint64_t chunk, uint64_t shift, void *dst,
               uint64_t n) {
  if (!r->n) return 0;
  struct recent_slot *s = &r->slots[chunk % r->n];
  pthread_mutex_lock(&s->lock);
  int hit = s->chunk == chunk + 1 && shift <= s->len && n <= s->len - shift;
  if (hit) memcpy(dst, s->buf + shift, n);
  pthread_mutex_unlock(&s->lock);
  return hit;
}

void recent_put(struct recent *r, uint64_t chunk, const void *data,
                uint64_t len) {
  if (!r->n || len > r->chunk_size) return;
  struct recent_slot *s = &r->slots[chunk % r->n];
  pthread_mutex_lock(&s->lock);
  if (!s->buf) s->buf = malloc(r->chunk_size);
  if (s->buf) {
    memcpy(s->buf, data, len);
    s->chunk = chunk + 1;
    s->len = len;
  }
  pthread_mutex_unlock(&s->lock);
}

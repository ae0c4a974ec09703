/* The cache's slot table: chunk -> slot by open hashing with chains, the
 * VALID slots on an LRU list (common/lru.h), the rest on a free list.  Indexes,
 * not pointers, so the table is three flat arrays. */
#include <stdlib.h>

#include "cache.h"

int slots_make(struct cache *c) {
  c->hbits = 1;
  while ((1u << c->hbits) < 2 * c->nslots)
    c->hbits++;
  c->slots = calloc(c->nslots, sizeof *c->slots);
  c->heads = malloc(sizeof *c->heads << c->hbits);
  c->populated = calloc(c->nslots, 1);
  struct lru_node *node = calloc(c->nslots, sizeof *node);
  lru_init(&c->order, node);
  if (!c->slots || !c->heads || !c->populated || !node) return -1;
  for (uint32_t i = 0; i < (1u << c->hbits); i++)
    c->heads[i] = NONE;
  for (uint32_t i = 0; i < c->nslots; i++)
    c->slots[i].next = i + 1 < c->nslots ? (int32_t)i + 1 : NONE;
  c->free_head = 0;
  return 0;
}

void slots_free(struct cache *c) {
  for (uint32_t i = 0; c->slots && i < c->nslots; i++)
    free(c->slots[i].fetch);
  free(c->slots);
  free(c->populated);
  free(c->heads);
  free(c->order.node);
}

static uint32_t hash(const struct cache *c, uint64_t chunk) {
  return (uint32_t)((chunk * 0x9E3779B97F4A7C15ull) >> (64 - c->hbits));
}

int32_t slot_lookup(const struct cache *c, uint64_t chunk) {
  for (int32_t s = c->heads[hash(c, chunk)]; s != NONE; s = c->slots[s].hnext)
    if (c->slots[s].chunk == chunk) return s;
  return NONE;
}

void slot_hash_insert(struct cache *c, int32_t s) {
  uint32_t h = hash(c, c->slots[s].chunk);
  c->slots[s].hnext = c->heads[h];
  c->heads[h] = s;
}

void slot_hash_remove(struct cache *c, int32_t s) {
  int32_t *p = &c->heads[hash(c, c->slots[s].chunk)];
  while (*p != s)
    p = &c->slots[*p].hnext;
  *p = c->slots[s].hnext;
}

void slot_lru_push(struct cache *c, int32_t s) {
  lru_push(&c->order, s);
}

void slot_lru_touch(struct cache *c, int32_t s) {
  lru_touch(&c->order, s);
}

int32_t slot_take(struct cache *c) {
  int32_t s = c->free_head;
  if (s != NONE) {
    c->free_head = c->slots[s].next;
    return s;
  }
  for (s = c->order.lru; s != NONE; s = lru_newer(&c->order, s))
    if (c->slots[s].refs == 0) {
      lru_remove(&c->order, s);
      slot_hash_remove(c, s);
      c->slots[s].state = S_FREE;
      __atomic_fetch_add(c->c_evictions, 1, __ATOMIC_RELAXED);
      return s;
    }
  return NONE;
}

void slot_release(struct cache *c, int32_t s) {
  pthread_mutex_lock(&c->lock);
  if (--c->slots[s].refs == 0 && c->slot_waiters)
    pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

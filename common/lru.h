/* A least-recently-used order over entries 0..n-1 of a caller's table: a
 * doubly linked list of their indexes, kept in an array of n nodes the
 * caller gives, so listing an entry allocates nothing.  Not locked: the
 * table's lock guards it.  Used by the cache layer's slots and the store
 * source's chunk cache. */
#ifndef UFFDKIT_COMMON_LRU_H
#define UFFDKIT_COMMON_LRU_H

#include <stdint.h>

#define LRU_NONE (-1)

struct lru_node {
  int32_t prev, next; /* towards the most / least recently used */
};

struct lru {
  struct lru_node *node; /* the caller's, one per entry */
  int32_t mru, lru;      /* most and least recently used, or LRU_NONE */
};

/* An empty list over `node`. */
void lru_init(struct lru *l, struct lru_node *node);
/* Lists entry i (not listed) as the most recently used. */
void lru_push(struct lru *l, int32_t i);
/* Takes entry i (listed) off the list. */
void lru_remove(struct lru *l, int32_t i);
/* Makes entry i (listed) the most recently used. */
void lru_touch(struct lru *l, int32_t i);

/* The entry used just more recently than i (listed), or LRU_NONE: walking
 * from l->lru with it visits the oldest first. */
static inline int32_t lru_newer(const struct lru *l, int32_t i) {
  return l->node[i].prev;
}

#endif

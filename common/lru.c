#include "lru.h"

void lru_init(struct lru *l, struct lru_node *node) {
  l->node = node;
  l->mru = l->lru = LRU_NONE;
}

void lru_push(struct lru *l, int32_t i) {
  struct lru_node *n = &l->node[i];
  n->prev = LRU_NONE;
  n->next = l->mru;
  if (l->mru != LRU_NONE) l->node[l->mru].prev = i;
  l->mru = i;
  if (l->lru == LRU_NONE) l->lru = i;
}

void lru_remove(struct lru *l, int32_t i) {
  struct lru_node *n = &l->node[i];
  if (n->prev != LRU_NONE)
    l->node[n->prev].next = n->next;
  else
    l->mru = n->next;
  if (n->next != LRU_NONE)
    l->node[n->next].prev = n->prev;
  else
    l->lru = n->prev;
}

void lru_touch(struct lru *l, int32_t i) {
  if (l->mru == i) return;
  lru_remove(l, i);
  lru_push(l, i);
}

#include "ccache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { E_EMPTY, E_FLIGHT, E_HELD };

struct centry {
  uint8_t *data;    /* E_HELD: the decoded chunk */
  uint8_t *sums;    /* its page sums while some pages are unchecked */
  uint64_t checked; /* with sums: bit j, page j was checked */
  uint32_t len;     /* its bytes */
  uint16_t readers; /* copying out of data: not to be dropped */
  uint8_t state;
  uint8_t bad; /* a page failed its check: dropped by its last reader */
};

int ccache_init(struct ccache *c, uint64_t bytes, uint64_t nchunks,
                uint32_t chunk_size) {
  memset(c, 0, sizeof *c);
  c->chunk_size = chunk_size; /* buffers from malloc when it keeps nothing */
  if (!nchunks || bytes < chunk_size) return 0; /* keeps nothing */
  if (nchunks > INT32_MAX) {
    errno = EOVERFLOW;
    return -1;
  }
  struct lru_node *node = calloc(nchunks, sizeof *node);
  c->e = calloc(nchunks, sizeof *c->e);
  c->pool = bufpool_new(chunk_size, bytes);
  if (!node || !c->e || !c->pool) {
    free(node);
    free(c->e);
    bufpool_free(c->pool);
    memset(c, 0, sizeof *c);
    c->chunk_size = chunk_size;
    errno = ENOMEM;
    return -1;
  }
  lru_init(&c->order, node);
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->n = nchunks;
  c->cap = bytes;
  return 0;
}

void ccache_free(struct ccache *c) {
  if (!c->e) return;
  for (uint64_t i = 0; i < c->n; i++)
    free(c->e[i].sums);
  free(c->e); /* the chunks held go with the pool */
  free(c->order.node);
  bufpool_free(c->pool);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
  memset(c, 0, sizeof *c);
}

/* Lock held: held chunk i, which nobody is copying, is dropped. */
static void drop(struct ccache *c, int32_t i) {
  struct centry *e = &c->e[i];
  lru_remove(&c->order, i);
  c->bytes -= e->len;
  bufpool_give(c->pool, e->data);
  free(e->sums);
  *e = (struct centry){0};
}

/* Lock held: drops the least recently used held chunks nobody is copying,
 * but not `keep`, until the held bytes fit the bound. */
static void trim(struct ccache *c, int32_t keep) {
  int32_t i = c->order.lru;
  while (c->bytes > c->cap && i != LRU_NONE) {
    int32_t newer = lru_newer(&c->order, i);
    if (i != keep && !c->e[i].readers) drop(c, i);
    i = newer;
  }
}

/* Copies out of held chunk e (pinned by the caller, unlocked), checking
 * the pages the copy covers if the chunk has unchecked pages (sums and
 * checked read under the lock).  0, or -1 when a page failed. */
static int copy_out(struct ccache *c, uint64_t i, const struct centry *e,
                    const uint8_t *sums, uint64_t checked, uint64_t shift,
                    void *dst, uint64_t n) {
  uint64_t need = ccache_pages(shift, n);
  /* Pages past the bits are checked on every read. */
  int check = sums && ((checked & need) != need ||
                       shift + n > (uint64_t)CC_SUMS_PAGES * CC_PAGE);
  if (c->copy)
    return c->copy(c->copy_arg, i, e->data, e->len, sums, check, shift, dst, n);
  memcpy(dst, e->data + shift, n);
  return 0;
}

int ccache_get(struct ccache *c, uint64_t i, uint64_t shift, void *dst,
               uint64_t n, int wait) {
  if (!c->n) return CC_OFF;
  struct centry *e = &c->e[i];
  pthread_mutex_lock(&c->lock);
  if (!wait && e->state == E_FLIGHT) {
    pthread_mutex_unlock(&c->lock);
    return CC_BUSY;
  }
  while (e->state == E_FLIGHT)
    pthread_cond_wait(&c->cond, &c->lock);
  if (e->state == E_EMPTY) {
    e->state = E_FLIGHT;
    pthread_mutex_unlock(&c->lock);
    return CC_MINE;
  }
  if (e->bad) { /* going once its readers are done: fetch it anew */
    pthread_mutex_unlock(&c->lock);
    return CC_OFF;
  }
  /* Copied (and its pages checked) without the lock, so readers of other
   * chunks never wait for it; the entry stays while it is read. */
  e->readers++;
  lru_touch(&c->order, (int32_t)i);
  const uint8_t *sums = e->sums;
  uint64_t checked = e->checked;
  pthread_mutex_unlock(&c->lock);
  int rc = copy_out(c, i, e, sums, checked, shift, dst, n);
  pthread_mutex_lock(&c->lock);
  e->readers--;
  if (rc < 0)
    e->bad = 1;
  else if (e->sums)
    e->checked |= ccache_pages(shift, n);
  if (e->bad && !e->readers) drop(c, (int32_t)i);
  if (c->bytes > c->cap) trim(c, LRU_NONE);
  pthread_mutex_unlock(&c->lock);
  return rc < 0 ? CC_BAD : CC_HIT;
}

void *ccache_buf(struct ccache *c) {
  return c->pool ? bufpool_take(c->pool) : malloc(c->chunk_size);
}

void ccache_unbuf(struct ccache *c, void *buf) {
  if (c->pool)
    bufpool_give(c->pool, buf);
  else
    free(buf);
}

size_t ccache_claim(struct ccache *c, uint64_t *want, size_t k,
                    uint32_t chunk_size) {
  if (!c->n) return 0;
  size_t m = 0;
  pthread_mutex_lock(&c->lock);
  for (size_t j = 0; j < k && (m + 1) * (uint64_t)chunk_size <= c->cap; j++) {
    struct centry *e = &c->e[want[j]];
    if (e->state == E_HELD) /* wanted soon: not the next to go */
      lru_touch(&c->order, (int32_t)want[j]);
    if (e->state != E_EMPTY) continue;
    e->state = E_FLIGHT;
    want[m++] = want[j];
  }
  pthread_mutex_unlock(&c->lock);
  return m;
}

/* Lock held: chunk i, in flight or empty, now holds k's chunk. */
static void hold(struct ccache *c, uint64_t i, const struct cchunk *k) {
  c->e[i] = (struct centry){.data = k->data,
                            .sums = k->sums,
                            .checked = k->checked,
                            .len = (uint32_t)k->len,
                            .state = E_HELD};
  lru_push(&c->order, (int32_t)i);
  c->bytes += k->len;
  trim(c, (int32_t)i);
  pthread_cond_broadcast(&c->cond);
}

static void unchunk(struct ccache *c, const struct cchunk *k) {
  bufpool_give(c->pool, k->data);
  free(k->sums);
}

void ccache_done(struct ccache *c, uint64_t i, const struct cchunk *k) {
  struct centry *e = &c->e[i];
  pthread_mutex_lock(&c->lock);
  if (e->state == E_HELD) { /* offered meanwhile */
    if (k) unchunk(c, k);
  } else if (k) {
    hold(c, i, k);
  } else {
    e->state = E_EMPTY;
    pthread_cond_broadcast(&c->cond);
  }
  pthread_mutex_unlock(&c->lock);
}

int ccache_offer(struct ccache *c, uint64_t i, const struct cchunk *k) {
  if (!c->n) return 0;
  pthread_mutex_lock(&c->lock);
  int took = c->e[i].state == E_FLIGHT;
  if (took) hold(c, i, k);
  pthread_mutex_unlock(&c->lock);
  return took;
}

int ccache_settle(struct ccache *c, uint64_t i, int got,
                  const struct cchunk *k) {
  if (got == CC_MINE) {
    ccache_done(c, i, k->data ? k : NULL);
    return k->data != NULL;
  }
  return got == CC_BUSY && k->data && ccache_offer(c, i, k);
}

#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct bufpool {
  pthread_mutex_t lock;
  size_t size;
  unsigned ahead, n; /* wanted ready, ready now */
  void **ready;
  pthread_t filler;
  int running, joinable, stop;
};

struct bufpool *bufpool_new(size_t size, unsigned ahead) {
  struct bufpool *p = calloc(1, sizeof *p);
  if (!p || !ahead) {
    free(p);
    return NULL;
  }
  p->ready = calloc(ahead, sizeof *p->ready);
  if (!p->ready) {
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->lock, NULL);
  p->size = size;
  p->ahead = ahead;
  return p;
}

/* A new buffer with every page written once. */
static void *touched(size_t size) {
  unsigned char *b = malloc(size);
  if (!b) return NULL;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t o = 0; o < size; o += page)
    b[o] = 0;
  b[size - 1] = 0;
  return b;
}

/* Tops the pool up to `ahead`, allocating outside the lock, then ends:
 * an idle pool has no thread (a daemon may hold thousands of them). */
static void *fill(void *arg) {
  struct bufpool *p = arg;
  pthread_mutex_lock(&p->lock);
  while (!p->stop && p->n < p->ahead) {
    pthread_mutex_unlock(&p->lock);
    void *b = touched(p->size);
    pthread_mutex_lock(&p->lock);
    if (!b) break; /* out of memory: takes fall back to malloc */
    if (p->n < p->ahead)
      p->ready[p->n++] = b;
    else
      free(b);
  }
  p->running = 0;
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* Lock held: starts a filler when the pool is at half or less and none
 * runs, after joining the one that ended. */
static void refill(struct bufpool *p) {
  if (p->running || p->stop || p->n > p->ahead / 2) return;
  if (p->joinable) pthread_join(p->filler, NULL);
  p->joinable = p->running = pthread_create(&p->filler, NULL, fill, p) == 0;
}

void *bufpool_take(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  void *b = p->n ? p->ready[--p->n] : NULL;
  refill(p);
  pthread_mutex_unlock(&p->lock);
  return b ? b : malloc(p->size);
}

void bufpool_give(struct bufpool *p, void *buf) {
  if (!buf) return;
  pthread_mutex_lock(&p->lock);
  if (p->n < p->ahead) {
    p->ready[p->n++] = buf;
    buf = NULL;
  }
  pthread_mutex_unlock(&p->lock);
  free(buf);
}

unsigned bufpool_ready(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  unsigned n = p->n;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void bufpool_free(struct bufpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_mutex_unlock(&p->lock);
  if (p->joinable) pthread_join(p->filler, NULL);
  for (unsigned i = 0; i < p->n; i++)
    free(p->ready[i]);
  free(p->ready);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

#include "bufpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct bufpool {
  pthread_mutex_t lock;
  pthread_cond_t want; /* a take left the pool at half or less, or stop */
  size_t size;
  unsigned ahead, n; /* wanted ready, ready now */
  uint64_t idle_ns;  /* a filler with nothing to do this long ends */
  void **ready;
  pthread_t filler;
  int running, joinable, stop;
  unsigned starts;        /* fillers started */
  uint64_t *made, *empty; /* counters, or NULL */
};

/* Adds one to a counter the pool may have. */
static void count(uint64_t *c) {
  if (c) __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

struct bufpool *bufpool_new(size_t size, unsigned ahead, uint64_t idle_ns) {
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
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&p->want, &a);
  pthread_condattr_destroy(&a);
  pthread_mutex_init(&p->lock, NULL);
  p->size = size;
  p->ahead = ahead;
  p->idle_ns = idle_ns;
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

/* Lock held: waits for a take to leave the pool at half or less, for
 * idle_ns at most.  0 when the filler has work, else it should end. */
static int wait_want(struct bufpool *p) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t end =
      (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec + p->idle_ns;
  struct timespec t = {(time_t)(end / 1000000000u), (long)(end % 1000000000u)};
  int rc = 0;
  while (!p->stop && p->n > p->ahead / 2 && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&p->want, &p->lock, &t);
  return p->stop || p->n > p->ahead / 2;
}

/* Tops the pool up to `ahead`, allocating outside the lock, and again
 * each time takes leave it at half; ends when it has been full for
 * idle_ns, so an idle pool has no thread (a daemon may hold thousands of
 * pools) and a busy one starts none on the fault path. */
static void *fill(void *arg) {
  struct bufpool *p = arg;
  pthread_mutex_lock(&p->lock);
  do {
    while (!p->stop && p->n < p->ahead) {
      pthread_mutex_unlock(&p->lock);
      void *b = touched(p->size);
      pthread_mutex_lock(&p->lock);
      if (!b) goto out; /* out of memory: takes fall back to malloc */
      if (p->n < p->ahead) {
        p->ready[p->n++] = b;
        count(p->made);
      } else {
        free(b);
      }
    }
  } while (!wait_want(p));
out:
  p->running = 0;
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* Lock held: at half or less, wakes the filler, or starts one (after
 * joining the one that ended). */
static void refill(struct bufpool *p) {
  if (p->stop || p->n > p->ahead / 2) return;
  if (p->running) {
    pthread_cond_signal(&p->want);
    return;
  }
  if (p->joinable) pthread_join(p->filler, NULL);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 << 10);
  p->joinable = p->running = pthread_create(&p->filler, &a, fill, p) == 0;
  pthread_attr_destroy(&a);
  p->starts += (unsigned)p->running;
}

void *bufpool_take(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  void *b = p->n ? p->ready[--p->n] : NULL;
  refill(p);
  if (!b) count(p->empty);
  pthread_mutex_unlock(&p->lock);
  return b ? b : malloc(p->size);
}

void bufpool_count(struct bufpool *p, uint64_t *made, uint64_t *empty) {
  pthread_mutex_lock(&p->lock);
  p->made = made;
  p->empty = empty;
  pthread_mutex_unlock(&p->lock);
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

unsigned bufpool_starts(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  unsigned n = p->starts;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void bufpool_free(struct bufpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_signal(&p->want);
  pthread_mutex_unlock(&p->lock);
  if (p->joinable) pthread_join(p->filler, NULL);
  for (unsigned i = 0; i < p->n; i++)
    free(p->ready[i]);
  free(p->ready);
  pthread_cond_destroy(&p->want);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

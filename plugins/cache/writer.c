#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct writer {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a job queued, a job done, or stop */
  struct wjob *head, *tail;
  unsigned n, depth; /* jobs with a copy */
  unsigned nplace;   /* jobs without, up to depth * WRITER_NOCOPY_FACTOR */
  int stop;
  writer_fn fn;
  void *arg;
  pthread_t thread;
};

static void *run(void *arg) {
  struct writer *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (!w->head && !w->stop)
      pthread_cond_wait(&w->cond, &w->lock);
    struct wjob *j = w->head;
    if (!j) break;
    j->busy = 1;
    pthread_mutex_unlock(&w->lock);
    w->fn(w->arg, j);
    pthread_mutex_lock(&w->lock);
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    if (j->buf)
      w->n--;
    else
      w->nplace--;
    free(j->buf);
    free(j);
    pthread_cond_broadcast(&w->cond);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

struct writer *writer_new(unsigned depth, writer_fn fn, void *arg) {
  struct writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->depth = depth;
  w->fn = fn;
  w->arg = arg;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  int e = pthread_create(&w->thread, NULL, run, w);
  if (e) {
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
    errno = e;
    return NULL;
  }
  return w;
}

/* The queue is written out, not dropped: a daemon stopping keeps what it
 * fetched for the next one. */
void writer_free(struct writer *w) {
  if (!w) return;
  pthread_mutex_lock(&w->lock);
  w->stop = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
  free(w);
}

static void append(struct writer *w, struct wjob *j) {
  if (w->tail)
    w->tail->next = j;
  else
    w->head = j;
  w->tail = j;
  pthread_cond_broadcast(&w->cond);
}

/* Past the copies: the place alone, for the writer to fill from the
 * memory cache. */
static int put_place(struct writer *w, const uint8_t key[WRITER_KEY_LEN],
                     uint64_t off, uint64_t len, void *ctx) {
  struct wjob *j = calloc(1, sizeof *j);
  if (!j) {
    errno = ENOMEM;
    return -1;
  }
  *j = (struct wjob){.off = off, .len = len, .ctx = ctx};
  memcpy(j->key, key, WRITER_KEY_LEN);
  pthread_mutex_lock(&w->lock);
  int full = w->nplace >= w->depth * WRITER_NOCOPY_FACTOR;
  if (!full) {
    w->nplace++;
    append(w, j);
  }
  pthread_mutex_unlock(&w->lock);
  if (!full) return 0;
  free(j);
  errno = EAGAIN;
  return -1;
}

int writer_put(struct writer *w, const uint8_t key[WRITER_KEY_LEN],
               uint64_t off, const void *buf, uint64_t len, void *ctx) {
  pthread_mutex_lock(&w->lock);
  int full = w->n >= w->depth;
  if (!full) w->n++; /* the place is taken before the copy, unlocked */
  pthread_mutex_unlock(&w->lock);
  if (full) return put_place(w, key, off, len, ctx);
  struct wjob *j = calloc(1, sizeof *j);
  uint8_t *copy = j ? malloc(len ? len : 1) : NULL;
  if (!copy) {
    free(j);
    pthread_mutex_lock(&w->lock);
    w->n--;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    errno = ENOMEM;
    return -1;
  }
  memcpy(copy, buf, len);
  *j = (struct wjob){.off = off, .len = len, .buf = copy, .ctx = ctx};
  memcpy(j->key, key, WRITER_KEY_LEN);
  pthread_mutex_lock(&w->lock);
  append(w, j);
  pthread_mutex_unlock(&w->lock);
  return 0;
}

int writer_find(struct writer *w, const uint8_t key[WRITER_KEY_LEN],
                uint64_t off, void *buf, uint64_t len) {
  int found = 0;
  pthread_mutex_lock(&w->lock);
  for (struct wjob *j = w->head; j && !found; j = j->next)
    if (j->buf && j->off == off && j->len == len &&
        !memcmp(j->key, key, WRITER_KEY_LEN)) {
      memcpy(buf, j->buf, len);
      found = 1;
    }
  pthread_mutex_unlock(&w->lock);
  return found;
}

/* Counted places (n) include jobs still being copied in writer_put, so
 * those are waited for too. */
static int pending(const struct writer *w, const void *ctx) {
  if (!ctx) return w->n + w->nplace > 0;
  for (const struct wjob *j = w->head; j; j = j->next)
    if (j->ctx == ctx) return 1;
  return 0;
}

void writer_drain(struct writer *w, const void *ctx) {
  pthread_mutex_lock(&w->lock);
  while (pending(w, ctx))
    pthread_cond_wait(&w->cond, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hosterror.h"
#include "install.h"
#include "log.h"
#include "mem.h"
#include "session.h"

#define QUEUE 4096
#define BUF_SIZE (2u << 20) /* the largest page */

struct job {
  struct session *s;
  uint64_t addr, off, idx, len;
};

struct pool {
  char name[64];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job *q; /* QUEUE jobs, from the first: an idle listener has none */
  unsigned head, count;
  int stop;
  /* Threads start with the first jobs that find none idle, up to max:
   * thousands of listeners waiting for their VM cost no thread. */
  int max, nthreads, idle;
  pthread_t *threads;
};

/* Installs what was read, unless the range was removed meanwhile; retries
 * while the kernel says a REMOVE is pending. */
static void install(struct job *j, const void *src) {
  struct session *s = j->s;
  for (;;) {
    pthread_rwlock_rdlock(&s->rmlock);
    enum install_result r = bitmap_test(s->removed, j->idx)
                                ? install_zero(s, j->addr, j->len)
                                : install_copy(s, j->addr, src, j->len);
    pthread_rwlock_unlock(&s->rmlock);
    if (r == INSTALL_UNREADABLE) install_failed(s, j->addr, j->off);
    if (r != INSTALL_RETRY || session_ending(s)) return;
    nanosleep(&(struct timespec){0, 50000}, NULL);
  }
}

static void run_job(struct job *j, void *buf) {
  struct session *s = j->s;
  host_clear_error();
  if (!session_ending(s)) {
    const void *src = stack_map(s->wl->stack, j->off, j->len);
    if (src) {
      install(j, src);
      stack_release(s->wl->stack, src, j->off, j->len);
    } else if (stack_read(s->wl->stack, buf, j->len, j->off, UFK_READ_FAULT) <
               0)
      install_failed(s, j->addr, j->off);
    else
      install(j, buf);
  }
  bitmap_clear(s->inflight, j->idx, j->len / s->ps);
  __atomic_sub_fetch(&s->pool_jobs, 1, __ATOMIC_RELAXED);
  session_release(s);
}

static void *pool_thread(void *arg) {
  struct pool *p = arg;
  void *buf = xmemalign(BUF_SIZE);
  pthread_mutex_lock(&p->lock);
  for (;;) {
    p->idle++;
    while (!p->count && !p->stop)
      pthread_cond_wait(&p->cond, &p->lock);
    p->idle--;
    if (!p->count) break;
    struct job j = p->q[p->head];
    p->head = (p->head + 1) % QUEUE;
    p->count--;
    pthread_mutex_unlock(&p->lock);
    run_job(&j, buf);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  free(buf);
  return NULL;
}

struct pool *pool_new(const char *name, int threads) {
  struct pool *p = xcalloc(1, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->max = threads < 1 ? 1 : threads;
  p->threads = xcalloc((size_t)p->max, sizeof *p->threads);
  return p;
}

/* Under p->lock: one more thread, if the queue has more jobs than idle
 * threads to take them.  0, or pthread_create's error. */
static int grow(struct pool *p) {
  if (p->count <= (unsigned)p->idle || p->nthreads == p->max) return 0;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 << 10);
  int rc = pthread_create(&p->threads[p->nthreads], &a, pool_thread, p);
  pthread_attr_destroy(&a);
  if (rc == 0) p->nthreads++;
  return rc;
}

int pool_threads(struct pool *p) {
  pthread_mutex_lock(&p->lock);
  int n = p->nthreads;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void pool_free(struct pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  free(p->q);
  free(p);
}

void pool_submit(struct pool *p, struct session *s, uint64_t addr, uint64_t off,
                 uint64_t idx, uint64_t len) {
  session_hold(s);
  __atomic_add_fetch(&s->pool_jobs, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&p->lock);
  if (!p->q) p->q = xcalloc(QUEUE, sizeof *p->q);
  while (p->count == QUEUE) { /* full: the fault loop waits for room */
    pthread_mutex_unlock(&p->lock);
    nanosleep(&(struct timespec){0, 100000}, NULL);
    pthread_mutex_lock(&p->lock);
  }
  struct job j = {.s = s, .addr = addr, .off = off, .idx = idx, .len = len};
  p->q[(p->head + p->count) % QUEUE] = j;
  p->count++;
  int rc = grow(p);
  if (rc && p->nthreads == 0) { /* nobody to run it: run it here */
    p->count--;
    pthread_mutex_unlock(&p->lock);
    log_warn("%s: cannot start an I/O thread: %s; reading on the fault "
             "thread",
             p->name, strerror(rc));
    void *buf = xmemalign(BUF_SIZE);
    run_job(&j, buf);
    free(buf);
    return;
  }
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

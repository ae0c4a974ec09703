/* Short-lived threads of the worker (restore starters, generation frees)
 * whose ends are waited for.  A detached thread's last steps (its
 * thread-local destructors, a plugin library's among them) can still run
 * after the worker has returned from main and the libraries' exit
 * handlers have torn down what those destructors need; OpenSSL then
 * leaves the thread's error state behind.  These threads are joined
 * instead: each one that has finished when the next is started, and all
 * of them when the worker stops. */
#ifndef UFFDKIT_WORKER_HELPERS_H
#define UFFDKIT_WORKER_HELPERS_H

#include <pthread.h>

struct helper;

struct helpers {
  pthread_mutex_t lock;
  struct helper *list; /* started, not yet joined */
};

#define HELPERS_INIT                                                           \
  { PTHREAD_MUTEX_INITIALIZER, NULL }

/* Runs fn(arg) on a new thread, after joining those that have finished;
 * 0, or an errno value (the thread was not started). */
int helpers_start(struct helpers *h, void *(*fn)(void *), void *arg);

/* Joins every thread started, waiting for those still running. */
void helpers_join_all(struct helpers *h);

/* Threads started and not joined yet (for tests). */
unsigned helpers_count(struct helpers *h);

#endif

/* A restored VM as the worker sees it, and its fault loop. */
#ifndef UFFDKIT_CORE_SESSION_H
#define UFFDKIT_CORE_SESSION_H

#include <pthread.h>
#include <stdint.h>
#include <uffdkit/plugin.h>

#include "config.h"
#include "log.h"
#include "shm.h"
#include "stack.h"

struct pool;

/* One listener in the worker. */
struct worker_listener {
  const struct listener_conf *conf;
  struct stack *stack;
  struct listener_stats *stats;
  struct pool *pool;            /* for stacks that may block; NULL when FAST */
  struct log_limit lim_refused; /* sessions its source refused */
};

struct session {
  uint64_t id;
  struct worker_listener *wl;
  int conn, uffd, pidfd, shmfd, stopfd;
  struct session_shm *shm;
  size_t shm_len;
  uint64_t *present;  /* bit per page: installed */
  uint64_t *removed;  /* bit per page: discarded, must read as zeros */
  uint64_t *inflight; /* bit per page: queued to the pool */
  int pool_jobs;      /* queued or running in the pool (atomic) */
  struct ufk_session_info info;
  struct ufk_region regions[CONF_MAX_REGIONS];
  uint32_t ps;
  unsigned ps_shift;
  int last_region;
  /* Held for writing while REMOVE events are read and applied, for reading
   * by any thread between checking `removed` and installing a page, so no
   * install can land between the kernel's zap and our record of it. */
  pthread_rwlock_t rmlock;
  void *buf; /* page buffer for sources without map() */
  int keeps_socket;
  int conn_open;
  int end_reason; /* the session thread's own */
  int ending;     /* set when the fault loop leaves: pool jobs give up */
  int killed;     /* set by any thread: the VM was killed for a source error */
  int source_changed; /* the source is not what the session started on */
  int finished;       /* its thread has nothing left to do: join it */
#define STALE_RING 64
  uint64_t stale[STALE_RING]; /* pages lately woken as stale faults */
  unsigned stale_next;
  uint64_t last_fault; /* page of the last fault served inline */
  uint64_t demand_ns;  /* when the fault loop last served a fault */
  struct prefetch *pf; /* working set and background fill, or NULL */
  /* Every message the VMM can trigger, one limit per kind. */
  struct log_limit lim_fork, lim_unmap, lim_other;
  uint64_t defer[2 * SHM_EVBUF];
  int ndefer;
  /* pool jobs hold references; the loop waits for them before freeing */
  pthread_mutex_t ref_lock;
  pthread_cond_t ref_cond;
  int refs;
  pthread_t thread;
  struct session *next;
};

/* Sets up a session from the fds the supervisor sent ({conn, uffd, pidfd,
 * shm}); returns NULL (fds closed) if it must be refused. */
struct session *session_new(struct worker_listener *wl, uint64_t id,
                            const int fds[4]);
/* The fault loop: runs until the VM ends or stopfd is written. */
void *session_main(void *arg);
void session_free(struct session *s);

/* Installing pages.  Each returns 0 (installed or already present), 1 if
 * the kernel asked to retry later (EAGAIN), -1 when the VM is gone, or 3
 * when the source bytes could not be read (EFAULT: apply the policy). */
int session_install_copy(struct session *s, uint64_t dst, const void *src,
                         uint64_t len);
int session_install_zero(struct session *s, uint64_t dst, uint64_t len);
/* The same with a mode (UFFDIO_COPY_MODE_DONTWAKE, ..._ZEROPAGE_MODE_...),
 * setting *got to the bytes this call installed: fewer than len when a
 * page of the run was installed by someone else first. */
int session_install_copy_mode(struct session *s, uint64_t dst, const void *src,
                              uint64_t len, uint64_t mode, uint64_t *got);
int session_install_zero_mode(struct session *s, uint64_t dst, uint64_t len,
                              uint64_t mode, uint64_t *got);
/* Whether on_source_error killed the VM, from any thread: the fault loop
 * stops serving it and its end is reported as a failure. */
static inline int session_failed(const struct session *s) {
  return __atomic_load_n(&s->killed, __ATOMIC_ACQUIRE);
}
/* Applies on_source_error for the page at addr. */
void session_source_failed(struct session *s, uint64_t addr, uint64_t off);
/* Records the source's identity in the session's shared state, or, when a
 * worker takes the session over, compares it: a source serving other data
 * than the session started on sets source_changed (logged once, and the
 * VM killed under the kill policy); every fault then goes to
 * on_source_error without reading. */
void session_pin_source(struct session *s);

/* Page index helpers. */
static inline int bit_test(const uint64_t *b, uint64_t i) {
  return (__atomic_load_n(&b[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}
void bits_set(uint64_t *b, uint64_t first, uint64_t n);
void bits_clear(uint64_t *b, uint64_t first, uint64_t n);

#define COUNT(s, field, n)                                                     \
  __atomic_fetch_add(&(s)->shm->counters.field, (n), __ATOMIC_RELAXED)

#endif

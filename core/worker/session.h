/* A restored VM as the worker sees it: its regions, the state of each of
 * its pages and the lookups between guest addresses, source offsets and
 * page indices.  The fault loop (fault.c), the I/O pool (pool.c) and the
 * warmer (warm.c) work on it; installing pages is install.c. */
#ifndef UFFDKIT_CORE_SESSION_H
#define UFFDKIT_CORE_SESSION_H

#include <pthread.h>
#include <stdint.h>
#include <uffdkit/plugin.h>

#include "bitmap.h"
#include "busypoll.h"
#include "config.h"
#include "log.h"
#include "shm.h"
#include "stack.h"

struct pool;
struct warm;
struct wstack;

/* One listener in the worker. */
struct worker_listener {
  const struct listener_conf *conf;
  struct stack *stack;
  struct listener_stats *stats;
  struct pool *pool;            /* for stacks that may block; NULL when FAST */
  struct log_limit lim_refused; /* sessions its source refused */
  struct wstack *ws; /* a generation's: the stack it shares (stacks.h) */
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
  int error_told;     /* its first source error was told (atomic) */
  int finished;       /* its thread has nothing left to do: join it */
#define STALE_RING 64
  uint64_t stale[STALE_RING]; /* pages lately woken as stale faults */
  unsigned stale_next;
  uint64_t last_fault; /* page of the last fault served inline */
  uint64_t demand_ns;  /* when the fault loop last served a fault */
  struct warm *warm;   /* working-set record/replay, background fill */
  /* Every message the VMM can trigger, one limit per kind. */
  struct log_limit lim_fork, lim_unmap, lim_other;
  uint64_t defer[2 * SHM_EVBUF];
  int ndefer;
  struct busypoll poll; /* when the fault loop polls (busypoll.h) */
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
void session_free(struct session *s);

/* A reference held by each pool job; session_unheld() waits until none is
 * left, before the session is freed. */
void session_hold(struct session *s);
void session_release(struct session *s);
void session_unheld(struct session *s);

/* Whether on_source_error killed the VM, from any thread: the fault loop
 * stops serving it and its end is reported as a failure. */
static inline int session_failed(const struct session *s) {
  return __atomic_load_n(&s->killed, __ATOMIC_ACQUIRE);
}
/* Whether the session is over for every thread but its fault loop: pool
 * jobs and the warmer give up. */
static inline int session_ending(const struct session *s) {
  return __atomic_load_n(&s->ending, __ATOMIC_ACQUIRE);
}

/* Region index of guest address addr, or -1; the last one found is tried
 * first (faults cluster). */
int session_region(struct session *s, uint64_t addr);
/* Guest address of source offset off, its region in *ri; 0 if none. */
uint64_t session_guest_addr(const struct session *s, uint64_t off, int *ri);
/* Page index (in the session's bitmaps) of guest address addr in region
 * ri, and the source offset of addr. */
static inline uint64_t session_page_index(const struct session *s, int ri,
                                          uint64_t addr) {
  return s->shm->regions[ri].first_page +
         ((addr - s->regions[ri].base) >> s->ps_shift);
}
static inline uint64_t session_offset(const struct session *s, int ri,
                                      uint64_t addr) {
  return s->regions[ri].offset + (addr - s->regions[ri].base);
}
/* Whether page idx needs nothing from whoever asks: installed, removed
 * (reads as zeros) or queued to the pool. */
static inline int session_page_taken(const struct session *s, uint64_t idx) {
  return bitmap_test(s->present, idx) || bitmap_test(s->removed, idx) ||
         bitmap_test(s->inflight, idx);
}

/* One log line about session s, "session ID: ...": directly, or through
 * one of its limits for what the VMM can trigger. */
#define session_log(level, s, fmt, ...)                                        \
  log_session(level, (s)->id, fmt, ##__VA_ARGS__)
#define session_log_limited(lim, level, s, fmt, ...)                           \
  log_session_limited(lim, level, (s)->id, fmt, ##__VA_ARGS__)

#define COUNT(s, field, n)                                                     \
  __atomic_fetch_add(&(s)->shm->counters.field, (n), __ATOMIC_RELAXED)

#endif

/* State shared by the vCPU threads, the balloon and the watchdog during
 * one restore. */
#ifndef UFFDKIT_SIM_RESTORE_H
#define UFFDKIT_SIM_RESTORE_H

#include "sim.h"

#include <pthread.h>

enum balloon_phase { BALLOON_IDLE, BALLOON_DISCARDING, BALLOON_DONE };

struct vcpu_slot {
  pthread_t tid;
  unsigned id;
  struct restore *r;
  _Atomic uint64_t cur_off;
  _Atomic uint64_t fault_start; /* 0 when not inside a first touch */
  atomic_bool done;
};

struct restore {
  const struct sim_vm *vm;
  const struct sim_opts *o;
  struct sim_result *res;
  uint64_t *pages; /* page indices in touch order */
  size_t n_pages;
  uint64_t *lat_ns;  /* by position in pages[] */
  uint8_t *verified; /* by position: page read its expected bytes */
  struct vcpu_slot *slot;
  uint8_t *bad;         /* bitmap by page index: each wrong page counts once */
  pthread_mutex_t lock; /* guards bad, res->mismatches, the first mismatch */
  _Atomic uint64_t touched;
  _Atomic int balloon;
  _Atomic uint64_t balloon_off; /* range being discarded, for the watchdog */
  atomic_bool finished;
  int sock; /* kept-open connection (style 1.12), else -1 */
  int balloon_rc;
};

/* plan.c */
int plan_build(struct restore *r);

/* balloon.c */
bool balloon_covers(const struct sim_opts *o, uint64_t off);
int balloon_discard(struct restore *r);
void balloon_check_zero(struct restore *r);
int balloon_start_during(struct restore *r, pthread_t *tid);

/* verify.c */
void restore_mismatch(struct restore *r, uint64_t off);
bool page_is_zero(const uint8_t *p, uint64_t len);
void slot_fault_begin(struct vcpu_slot *s, uint64_t off, uint64_t t0);
void slot_fault_end(struct vcpu_slot *s);

/* watchdog.c */
int watchdog_start(struct restore *r, pthread_t *tid);

/* The restore a SIGBUS on guest memory is reported for (NULL: none). */
void sigbus_watch(const struct restore *r);

#endif

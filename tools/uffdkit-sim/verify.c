/* What the vCPUs and the balloon both record of a restore: the fault a
 * vCPU slot is waiting on (the watchdog reads it) and the pages whose bytes
 * were wrong. */
#include "restore.h"

#include <string.h>

void restore_mismatch(struct restore *r, uint64_t off) {
  uint64_t page = off / r->vm->page_size;
  uint8_t bit = (uint8_t)(1u << (page % 8));
  pthread_mutex_lock(&r->lock);
  if (!(r->bad[page / 8] & bit)) result_add_mismatch(r->res, r->vm, off);
  r->bad[page / 8] |= bit;
  pthread_mutex_unlock(&r->lock);
}

bool page_is_zero(const uint8_t *p, uint64_t len) {
  return p[0] == 0 && !memcmp(p, p + 1, len - 1);
}

void slot_fault_begin(struct vcpu_slot *s, uint64_t off, uint64_t t0) {
  atomic_store_explicit(&s->cur_off, off, memory_order_relaxed);
  atomic_store_explicit(&s->fault_start, t0, memory_order_relaxed);
}

void slot_fault_end(struct vcpu_slot *s) {
  atomic_store_explicit(&s->fault_start, 0, memory_order_relaxed);
}

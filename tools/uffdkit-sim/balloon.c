/* Balloon inflation as Firecracker 1.11+ does it: madvise(MADV_DONTNEED)
 * on guest memory, which the kernel reports as UFFD_EVENT_REMOVE. */
#include "restore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

bool balloon_covers(const struct sim_opts *o, uint64_t off) {
  for (unsigned i = 0; i < o->n_balloon; i++)
    if (off >= o->balloon[i].off && off - o->balloon[i].off < o->balloon[i].len)
      return true;
  return false;
}

int balloon_check_args(const struct sim_vm *vm, const struct sim_opts *o) {
  for (unsigned i = 0; i < o->n_balloon; i++) {
    const struct sim_range *b = &o->balloon[i];
    if (!b->len || b->off % vm->page_size || b->len % vm->page_size)
      return sim_err(SIM_SETUP,
                     "--balloon %" PRIu64 ":%" PRIu64
                     ": offset and length must be non-zero multiples of the "
                     "page size %" PRIu64 " (offset may be 0)",
                     b->off, b->len, vm->page_size);
    if (b->off > vm->mem_size || b->len > vm->mem_size - b->off)
      return sim_err(SIM_SETUP,
                     "--balloon %" PRIu64 ":%" PRIu64
                     ": range ends past the %" PRIu64 " bytes of guest memory",
                     b->off, b->len, vm->mem_size);
  }
  return 0;
}

static int discard_range(struct restore *r, const struct sim_range *b) {
  const struct sim_vm *vm = r->vm;
  for (unsigned i = 0; i < vm->n_regions; i++) {
    const struct sim_region *g = &vm->region[i];
    uint64_t lo = b->off > g->offset ? b->off : g->offset;
    uint64_t hi = b->off + b->len;
    if (hi > g->offset + g->size) hi = g->offset + g->size;
    if (lo >= hi) continue;
    atomic_store(&r->balloon_off, lo);
    if (madvise(g->base + (lo - g->offset), hi - lo, MADV_DONTNEED))
      return sim_err(SIM_SETUP,
                     "madvise(MADV_DONTNEED) of memory offsets 0x%" PRIx64
                     "..0x%" PRIx64 " (region %u) failed: %s",
                     lo, hi, i, strerror(errno));
  }
  return 0;
}

int balloon_discard(struct restore *r) {
  int rc = 0;
  atomic_store(&r->balloon, BALLOON_DISCARDING);
  for (unsigned i = 0; i < r->o->n_balloon && !rc; i++)
    rc = discard_range(r, &r->o->balloon[i]);
  atomic_store(&r->balloon, BALLOON_DONE);
  return rc;
}

/* Every page of a discarded range must now read zeros: its next touch is a
 * fault that the handler must answer with zeros, not file data. */
void balloon_check_zero(struct restore *r) {
  struct vcpu_slot *s = &r->slot[0];
  uint64_t ps = r->vm->page_size;
  for (unsigned i = 0; i < r->o->n_balloon; i++) {
    const struct sim_range *b = &r->o->balloon[i];
    for (uint64_t off = b->off; off < b->off + b->len; off += ps) {
      const uint8_t *p = vm_addr(r->vm, off);
      slot_fault_begin(s, off, now_ns());
      (void)*(volatile const uint8_t *)p;
      slot_fault_end(s);
      r->res->zero_checked++;
      if (!page_is_zero(p, ps)) restore_mismatch(r, off);
    }
  }
}

static void *balloon_thread(void *arg) {
  struct restore *r = arg;
  uint64_t quarter = r->n_pages / 4;
  while (atomic_load(&r->touched) < quarter)
    sleep_s(0.0002);
  if (r->o->balloon_delay > 0) sleep_s(r->o->balloon_delay);
  r->balloon_rc = balloon_discard(r);
  return NULL;
}

int balloon_start_during(struct restore *r, pthread_t *tid) {
  int e = pthread_create(tid, NULL, balloon_thread, r);
  if (e)
    return sim_err(SIM_SETUP, "cannot start the balloon thread: %s",
                   strerror(e));
  return 0;
}

/* A thread blocked in an unresolved userfault cannot be interrupted, so the
 * watchdog reports what is stuck and ends the whole process. */
#include "restore.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TICK_S 0.02
/* After the daemon hangs up, a fault older than this is abandoned. */
#define ABANDON_NS 1000000000ULL

/* The vCPU waiting longest inside a fault, else the first unfinished one;
 * slot 0 also stands for the balloon check that runs after the pass. */
static const struct vcpu_slot *stuck_slot(const struct restore *r) {
  const struct vcpu_slot *best = NULL;
  uint64_t oldest = UINT64_MAX;
  for (unsigned i = 0; i < r->o->vcpus; i++) {
    uint64_t t = atomic_load(&r->slot[i].fault_start);
    if (t && t < oldest) oldest = t, best = &r->slot[i];
  }
  for (unsigned i = 0; !best && i < r->o->vcpus; i++)
    if (!atomic_load(&r->slot[i].done)) best = &r->slot[i];
  return best;
}

static unsigned region_of(const struct restore *r, uint64_t off) {
  unsigned reg = 0;
  vm_locate(r->vm, off, &reg);
  return reg;
}

/* What the run verified before it had to stop, so a test can tell that the
 * pages served until then were right. */
static void report_so_far(struct restore *r) {
  pthread_mutex_lock(&r->lock);
  uint64_t bad = r->res->mismatches;
  pthread_mutex_unlock(&r->lock);
  fprintf(stderr,
          "uffdkit-sim: before that: touched=%" PRIu64 " mismatches=%" PRIu64
          "\n",
          (uint64_t)atomic_load(&r->touched), bad);
}

static void timeout_exit(struct restore *r) {
  const struct vcpu_slot *s = stuck_slot(r);
  if (!s && atomic_load(&r->balloon) == BALLOON_DISCARDING) {
    uint64_t off = atomic_load(&r->balloon_off);
    fprintf(stderr,
            "timeout: balloon discard stuck at memory offset 0x%" PRIx64
            " (region %u) after %.1f s\n",
            off, region_of(r, off), r->o->timeout);
    report_so_far(r);
    _exit(SIM_TIMEOUT);
  }
  if (!s) s = &r->slot[0];
  uint64_t off = atomic_load(&s->cur_off);
  fprintf(stderr,
          "timeout: vCPU %u stuck at memory offset 0x%" PRIx64
          " (region %u) after %.1f s\n",
          s->id, off, region_of(r, off), r->o->timeout);
  report_so_far(r);
  _exit(SIM_TIMEOUT);
}

static void abandoned_exit(struct restore *r, uint64_t now) {
  for (unsigned i = 0; i < r->o->vcpus; i++) {
    const struct vcpu_slot *s = &r->slot[i];
    uint64_t t = atomic_load(&s->fault_start);
    if (!t || now - t < ABANDON_NS) continue;
    uint64_t off = atomic_load(&s->cur_off);
    fprintf(stderr,
            "uffdkit-sim: %s closed the connection while vCPU %u waits for "
            "memory offset 0x%" PRIx64 " (region %u)\n",
            r->o->socket, i, off, region_of(r, off));
    report_so_far(r);
    _exit(SIM_CONN);
  }
}

static void *watchdog_main(void *arg) {
  struct restore *r = arg;
  uint64_t deadline = now_ns() + (uint64_t)(r->o->timeout * 1e9);
  bool closed = false;
  while (!atomic_load(&r->finished)) {
    sleep_s(TICK_S);
    uint64_t now = now_ns();
    if (r->sock >= 0 && !closed) closed = conn_peer_closed(r->sock);
    if (closed) abandoned_exit(r, now);
    if (now >= deadline && !atomic_load(&r->finished)) timeout_exit(r);
  }
  return NULL;
}

int watchdog_start(struct restore *r, pthread_t *tid) {
  int e = pthread_create(tid, NULL, watchdog_main, r);
  if (e)
    return sim_err(SIM_SETUP, "cannot start the watchdog thread: %s",
                   strerror(e));
  return 0;
}

/* The simulated vCPUs: first-touch every planned page, time the fault and
 * verify the bytes the handler installed. */
#include "restore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POKE_SALT 0x706f6b65ULL

/* A page of a range the balloon discards while we look at it may hold its
 * old bytes, zeros, or a mix of both; only the end state is checked then
 * (balloon_check_zero). Before the discard starts it must be the image,
 * after it ends it must be zeros. */
static bool balloon_page_ok(const struct restore *r, const uint8_t *p,
                            uint64_t off, int phase_before) {
  uint64_t ps = r->vm->page_size;
  if (phase_before == BALLOON_DONE) return page_is_zero(p, ps);
  bool image = !memcmp(p, r->vm->expect + off, ps);
  if (atomic_load(&r->balloon) == BALLOON_IDLE) return image;
  return true;
}

/* The read is done at a page-dependent offset inside the page, because
 * real guests fault anywhere in a page and handlers must align down. */
static void touch(struct restore *r, struct vcpu_slot *s, size_t pos) {
  const struct sim_vm *vm = r->vm;
  uint64_t page = r->pages[pos];
  uint64_t off = page * vm->page_size;
  const uint8_t *p = vm_addr(vm, off);
  size_t poke = (size_t)(mix2(r->o->seed ^ POKE_SALT, page) % vm->page_size);
  bool ballooned = r->o->balloon_during && balloon_covers(r->o, off);
  int phase = atomic_load(&r->balloon);

  uint64_t t0 = now_ns();
  slot_fault_begin(s, off, t0);
  (void)*(volatile const uint8_t *)(p + poke);
  uint64_t t1 = now_ns();
  slot_fault_end(s);
  r->lat_ns[pos] = t1 - t0;

  bool ok = ballooned ? balloon_page_ok(r, p, off, phase)
                      : !memcmp(p, vm->expect + off, vm->page_size);
  r->verified[pos] = ok;
  if (!ok) restore_mismatch(r, off);
}

static void *vcpu_main(void *arg) {
  struct vcpu_slot *s = arg;
  struct restore *r = s->r;
  unsigned step = r->o->vcpus;
  for (size_t pos = s->id; pos < r->n_pages; pos += step) {
    touch(r, s, pos);
    atomic_fetch_add(&r->touched, 1);
    if (r->o->delay_us) usleep(r->o->delay_us);
  }
  atomic_store(&s->done, true);
  return NULL;
}

static void start_vcpus(struct restore *r) {
  for (unsigned i = 0; i < r->o->vcpus; i++) {
    int e = pthread_create(&r->slot[i].tid, NULL, vcpu_main, &r->slot[i]);
    if (e) {
      /* Started vCPUs cannot be cancelled inside a fault. */
      fprintf(stderr, "uffdkit-sim: cannot start vCPU %u thread: %s\n", i,
              strerror(e));
      _exit(SIM_SETUP);
    }
  }
}

static void join_vcpus(struct restore *r) {
  for (unsigned i = 0; i < r->o->vcpus; i++)
    pthread_join(r->slot[i].tid, NULL);
}

/* Pages outside the balloon ranges cannot change once present, so this
 * re-check after a concurrent balloon only guards against a discard that
 * hit the wrong addresses. */
static void recheck_untouched_by_balloon(struct restore *r) {
  uint64_t ps = r->vm->page_size;
  for (size_t pos = 0; pos < r->n_pages; pos++) {
    uint64_t off = r->pages[pos] * ps;
    if (!r->verified[pos] || balloon_covers(r->o, off)) continue;
    if (memcmp(vm_addr(r->vm, off), r->vm->expect + off, ps))
      restore_mismatch(r, off);
  }
}

static int pass(struct restore *r) {
  pthread_t balloon;
  int rc = 0;
  uint64_t t0 = now_ns();
  if (r->o->balloon_during && r->o->n_balloon)
    rc = balloon_start_during(r, &balloon);
  if (rc) return rc;
  start_vcpus(r);
  join_vcpus(r);
  r->res->seconds += (double)(now_ns() - t0) / 1e9;
  if (r->o->balloon_during && r->o->n_balloon) {
    pthread_join(balloon, NULL);
    rc = r->balloon_rc;
  }
  return rc;
}

static int balloon_phase(struct restore *r) {
  if (!r->o->n_balloon) return 0;
  if (r->o->balloon_during) {
    recheck_untouched_by_balloon(r);
  } else {
    int rc = balloon_discard(r);
    if (rc) return rc;
  }
  balloon_check_zero(r);
  return 0;
}

static int collect(struct restore *r) {
  struct sim_result *res = r->res;
  uint64_t *lat =
      realloc(res->lat_ns, (res->n_lat + r->n_pages + 1) * sizeof(*lat));
  if (!lat)
    return sim_err(SIM_SETUP, "out of memory for %zu latencies",
                   res->n_lat + r->n_pages);
  memcpy(lat + res->n_lat, r->lat_ns, r->n_pages * sizeof(*lat));
  res->lat_ns = lat;
  res->n_lat += r->n_pages;
  res->pages += r->n_pages;
  res->bytes += r->n_pages * r->vm->page_size;
  return 0;
}

static int run_restore(struct restore *r) {
  pthread_t dog;
  int rc = plan_build(r);
  if (!rc) rc = watchdog_start(r, &dog);
  if (rc) return rc;
  rc = pass(r);
  if (!rc) rc = balloon_phase(r);
  atomic_store(&r->finished, true);
  pthread_join(dog, NULL);
  if (!rc) rc = collect(r);
  return rc;
}

int vcpu_restore(const struct sim_vm *vm, const struct sim_opts *o, int sock,
                 struct sim_result *res) {
  struct restore r = {.vm = vm, .o = o, .res = res, .sock = sock};
  pthread_mutex_init(&r.lock, NULL);
  r.slot = calloc(o->vcpus, sizeof(*r.slot));
  /* Set before the watchdog starts: it names a stuck vCPU by its id. */
  for (unsigned i = 0; r.slot && i < o->vcpus; i++) {
    r.slot[i].id = i;
    r.slot[i].r = &r;
  }
  sigbus_watch(&r);
  int rc = r.slot ? run_restore(&r)
                  : sim_err(SIM_SETUP, "out of memory for %u vCPUs", o->vcpus);
  sigbus_watch(NULL);
  free(r.slot);
  free(r.pages);
  free(r.lat_ns);
  free(r.verified);
  free(r.bad);
  pthread_mutex_destroy(&r.lock);
  return rc;
}

#include "session.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"
#include "region.h"

static void close_fds(const int fds[4]) {
  for (int i = 0; i < 4; i++)
    if (fds[i] >= 0) close(fds[i]);
}

/* Checks what the supervisor could not: that every region fits the
 * source. */
static int regions_fit(struct session *s) {
  int64_t size = stack_size(s->wl->stack);
  for (uint32_t i = 0; i < s->info.nregions; i++) {
    const struct ufk_region *r = &s->regions[i];
    if (r->offset + r->size > (uint64_t)size) {
      log_limited(&s->wl->lim_refused, LOG_ERROR,
                  "session %llu (pid %d) on %s: region %u [%llu, +%llu) lies "
                  "outside the source's %lld bytes; refusing it",
                  (unsigned long long)s->id, s->info.pid, s->wl->conf->name, i,
                  (unsigned long long)r->offset, (unsigned long long)r->size,
                  (long long)size);
      return 0;
    }
  }
  return 1;
}

static void session_init(struct session *s) {
  struct session_shm *m = s->shm;
  s->ps = m->page_size;
  s->ps_shift = (unsigned)__builtin_ctz(s->ps);
  s->present = (uint64_t *)((char *)m + m->present_off);
  s->removed = (uint64_t *)((char *)m + m->removed_off);
  s->inflight = xcalloc(bitmap_words(m->npages), sizeof(uint64_t));
  s->keeps_socket = (int)m->keeps_socket;
  s->conn_open = s->keeps_socket && s->conn >= 0;
  s->info = (struct ufk_session_info){.id = s->id,
                                      .pid = m->pid,
                                      .page_size = m->page_size,
                                      .nregions = m->nregions,
                                      .regions = s->regions,
                                      .listener = s->wl->conf->name};
  for (uint32_t i = 0; i < m->nregions && i < CONF_MAX_REGIONS; i++)
    s->regions[i] = (struct ufk_region){.base = m->regions[i].base,
                                        .size = m->regions[i].size,
                                        .offset = m->regions[i].offset};
  pthread_rwlock_init(&s->rmlock, NULL);
  pthread_mutex_init(&s->ref_lock, NULL);
  pthread_cond_init(&s->ref_cond, NULL);
  s->buf = xmemalign(s->ps);
}

struct session *session_new(struct worker_listener *wl, uint64_t id,
                            const int fds[4]) {
  struct session *s = xcalloc(1, sizeof *s);
  s->id = id;
  s->wl = wl;
  s->conn = fds[0];
  s->uffd = fds[1];
  s->pidfd = fds[2];
  s->shmfd = fds[3];
  s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->shm = s->shmfd >= 0 ? session_shm_map(s->shmfd, &s->shm_len) : NULL;
  if (!s->shm || s->uffd < 0 || s->shm->nregions == 0 ||
      s->shm->nregions > CONF_MAX_REGIONS) {
    session_log(LOG_ERROR, s, "unusable state from the supervisor");
    session_free(s);
    return NULL;
  }
  session_init(s);
  if (!regions_fit(s) || stack_open_session(wl->stack, &s->info) < 0) {
    session_free(s);
    return NULL;
  }
  return s;
}

void session_free(struct session *s) {
  if (s->shm) munmap(s->shm, s->shm_len);
  int fds[4] = {s->conn, s->uffd, s->pidfd, s->shmfd};
  close_fds(fds);
  if (s->stopfd >= 0) close(s->stopfd);
  free(s->inflight);
  free(s->buf);
  free(s);
}

static void add_refs(struct session *s, int d) {
  pthread_mutex_lock(&s->ref_lock);
  s->refs += d;
  if (!s->refs) pthread_cond_broadcast(&s->ref_cond);
  pthread_mutex_unlock(&s->ref_lock);
}

void session_hold(struct session *s) {
  add_refs(s, 1);
}

void session_release(struct session *s) {
  add_refs(s, -1);
}

void session_unheld(struct session *s) {
  pthread_mutex_lock(&s->ref_lock);
  while (s->refs)
    pthread_cond_wait(&s->ref_cond, &s->ref_lock);
  pthread_mutex_unlock(&s->ref_lock);
}

int session_region(struct session *s, uint64_t addr) {
  int last = __atomic_load_n(&s->last_region, __ATOMIC_RELAXED);
  const struct ufk_region *r = &s->regions[last];
  if (addr - r->base < r->size) return last;
  int i = region_find(s->regions, s->info.nregions, addr);
  if (i >= 0) __atomic_store_n(&s->last_region, i, __ATOMIC_RELAXED);
  return i;
}

uint64_t session_guest_addr(const struct session *s, uint64_t off, int *ri) {
  *ri = region_find_offset(s->regions, s->info.nregions, off);
  return *ri < 0 ? 0 : s->regions[*ri].base + (off - s->regions[*ri].offset);
}

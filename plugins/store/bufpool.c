#include "bufpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE (2u << 20)
#define STEP (256u << 10) /* filled at once: a few tens of us, not a slab's */

struct slab {
  uint8_t *base;
  size_t len;
};

struct bufpool {
  pthread_mutex_t lock;
  size_t size, slab_len, step;
  uint8_t *next, *filled, *end; /* the current slab: carve, filled, end */
  struct slab *slabs;
  size_t nslabs;
  void *spare; /* buffers given back, each holding the next one's address */
  unsigned nspare;
  uint64_t *made, *fills; /* counters, or NULL */
};

static size_t round_up(uint64_t n, size_t to) {
  return (size_t)((n + to - 1) / to * to);
}

struct bufpool *bufpool_new(size_t size, uint64_t most) {
  if (size < sizeof(void *)) return NULL; /* a spare holds a pointer */
  struct bufpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  pthread_mutex_init(&p->lock, NULL);
  p->size = size;
  if (size >= HUGE)
    p->slab_len = round_up(size, HUGE);
  else if (most >= HUGE)
    p->slab_len = HUGE / size * size;
  else
    p->slab_len = most > size ? round_up(most, size) : size;
  p->step = STEP > size ? STEP / size * size : size;
  if (p->step > p->slab_len) p->step = p->slab_len;
  return p;
}

static void count(uint64_t *c, uint64_t n) {
  if (c) __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* Maps a slab (aligned to 2 MiB when a multiple of it, so it can be made
 * of transparent huge pages) and makes it current.  -1 when out of
 * memory. */
static int new_slab(struct bufpool *p) {
  struct slab *s = realloc(p->slabs, (p->nslabs + 1) * sizeof *s);
  if (!s) return -1;
  p->slabs = s;
  int huge = p->slab_len % HUGE == 0;
  size_t map = p->slab_len + (huge ? HUGE : 0);
  uint8_t *m = mmap(NULL, map, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  uint8_t *base = m;
  if (huge) {
    base = (uint8_t *)round_up((uintptr_t)m, HUGE);
    if (base > m) munmap(m, (size_t)(base - m));
    size_t tail = map - (size_t)(base - m) - p->slab_len;
    if (tail) munmap(base + p->slab_len, tail);
    madvise(base, p->slab_len, MADV_HUGEPAGE); /* a hint: THP may be off */
  }
  p->slabs[p->nslabs++] = (struct slab){base, p->slab_len};
  p->next = p->filled = base;
  p->end = base + p->slab_len;
  return 0;
}

/* Writes every page of [from, from + len) in one call; a kernel without
 * MADV_POPULATE_WRITE (before 5.14) has each page written here instead.
 * Any other failure leaves the pages to be written on first use. */
static void fill(struct bufpool *p, uint8_t *from, size_t len) {
  count(p->fills, 1);
  if (madvise(from, len, MADV_POPULATE_WRITE) == 0 || errno != EINVAL) return;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t o = 0; o < len; o += page)
    ((volatile uint8_t *)from)[o] = 0;
}

/* Lock held: the next buffer of the current slab, filling or mapping
 * first as needed. */
static void *carve(struct bufpool *p) {
  if (!p->next || p->next + p->size > p->end) {
    if (new_slab(p) < 0) return NULL;
  }
  if (p->next + p->size > p->filled) {
    size_t len = p->step;
    if (len > (size_t)(p->end - p->filled)) len = (size_t)(p->end - p->filled);
    fill(p, p->filled, len);
    p->filled += len;
  }
  void *b = p->next;
  p->next += p->size;
  count(p->made, 1);
  return b;
}

void *bufpool_take(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  void *b = p->spare;
  if (b) {
    p->spare = *(void **)b;
    p->nspare--;
  } else {
    b = carve(p);
  }
  pthread_mutex_unlock(&p->lock);
  return b;
}

void bufpool_give(struct bufpool *p, void *buf) {
  if (!buf) return;
  pthread_mutex_lock(&p->lock);
  *(void **)buf = p->spare;
  p->spare = buf;
  p->nspare++;
  pthread_mutex_unlock(&p->lock);
}

void bufpool_count(struct bufpool *p, uint64_t *made, uint64_t *fills) {
  pthread_mutex_lock(&p->lock);
  p->made = made;
  p->fills = fills;
  pthread_mutex_unlock(&p->lock);
}

uint64_t bufpool_mapped(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  uint64_t n = (uint64_t)p->nslabs * p->slab_len;
  pthread_mutex_unlock(&p->lock);
  return n;
}

unsigned bufpool_spare(struct bufpool *p) {
  pthread_mutex_lock(&p->lock);
  unsigned n = p->nspare;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void bufpool_free(struct bufpool *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nslabs; i++)
    munmap(p->slabs[i].base, p->slabs[i].len);
  free(p->slabs);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

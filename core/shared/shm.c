#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((size_t)(a)-1))

static size_t bitmap_bytes(uint64_t npages) {
  return ALIGN_UP((npages + 63) / 64 * 8, 4096);
}

void session_counters_add(struct session_counters *to,
                          const struct session_counters *from) {
  const uint64_t *f = (const uint64_t *)from;
  uint64_t *t = (uint64_t *)to;
  for (size_t i = 0; i < sizeof *from / sizeof(uint64_t); i++)
    __atomic_fetch_add(&t[i], __atomic_load_n(&f[i], __ATOMIC_RELAXED),
                       __ATOMIC_RELAXED);
}

size_t session_shm_size(uint64_t npages) {
  return ALIGN_UP(sizeof(struct session_shm), 4096) + 2 * bitmap_bytes(npages);
}

/* memfd of len bytes, mapped shared; the fd or -1 with errno set. */
static int shared_memfd(const char *name, size_t len, void **out) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  if (ftruncate(fd, (off_t)len) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *out = p;
  return fd;
}

int session_shm_create(uint64_t npages, struct session_shm **out, size_t *len) {
  size_t l = session_shm_size(npages);
  void *p;
  int fd = shared_memfd("uffdkit-session", l, &p);
  if (fd < 0) return -1;
  struct session_shm *s = p;
  s->magic = SESSION_SHM_MAGIC;
  s->npages = npages;
  s->present_off = ALIGN_UP(sizeof(struct session_shm), 4096);
  s->removed_off = s->present_off + bitmap_bytes(npages);
  *out = s;
  *len = l;
  return fd;
}

struct session_shm *session_shm_map(int fd, size_t *len) {
  struct stat st;
  if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct session_shm))
    return NULL;
  void *p =
      mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return NULL;
  struct session_shm *s = p;
  if (s->magic != SESSION_SHM_MAGIC ||
      session_shm_size(s->npages) != (size_t)st.st_size) {
    munmap(p, (size_t)st.st_size);
    errno = EINVAL;
    return NULL;
  }
  *len = (size_t)st.st_size;
  return s;
}

int listener_stats_create(struct listener_stats **out) {
  void *p;
  int fd = shared_memfd("uffdkit-listener",
                        ALIGN_UP(sizeof(struct listener_stats), 4096), &p);
  if (fd >= 0) *out = p;
  return fd;
}

struct listener_stats *listener_stats_map(int fd) {
  void *p = mmap(NULL, ALIGN_UP(sizeof(struct listener_stats), 4096),
                 PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

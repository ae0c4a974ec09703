#include "disk.h"

#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

_Static_assert(DISK_KEY_LEN == WRITER_KEY_LEN, "one key");

static const char MAGIC[8] = {'U', 'F', 'K', 'C', 'H', 'N', 'K', '1'};
/* "<64 hex key>-<16 hex offset>" */
#define NAME_LEN (2 * DISK_KEY_LEN + 1 + 16)

/* One entry file, in the index (a tree by name) and the LRU list. */
struct dent {
  char name[NAME_LEN + 1];
  uint64_t bytes; /* the file's size */
  int64_t used;   /* mtime, updated on use: the LRU order across restarts */
  struct dent *prev, *next;
};

struct disk {
  char *dir;
  uint64_t bound, total;
  int refs;
  void *tree;                /* struct dent *, by name (tsearch) */
  struct dent *mru, *lru;    /* most and least recently used */
  unsigned long tmp_counter; /* temporary names: .tmp-PID-N */
  pthread_mutex_t lock;
  struct writer *writer; /* stores chunks off the fetching threads */
  unsigned depth;
  const struct disk_calls *calls;
  struct disk *next_open; /* the process's open directories */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct disk *registry;

/* ---- entry format ---- */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void sha256(const void *data, size_t n, uint8_t out[32]) {
  unsigned int len = 32;
  EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

void disk_key(const char *identity, uint8_t key[DISK_KEY_LEN]) {
  sha256(identity, strlen(identity), key);
}

static const char *check_entry(const uint8_t *hdr, const uint8_t *data,
                               uint64_t datalen, const uint8_t *key,
                               uint64_t off, uint64_t len) {
  uint8_t sum[32];
  if (memcmp(hdr, MAGIC, sizeof MAGIC)) return "not a cache entry";
  if (get64(hdr + 8) != off || get64(hdr + 16) != len)
    return "its header names another chunk";
  if (memcmp(hdr + 24, key, DISK_KEY_LEN))
    return "its header names another source";
  for (int i = 88; i < DISK_HEADER; i++)
    if (hdr[i]) return "its header has bytes set that must be zero";
  if (datalen != len) return "its length is wrong (torn)";
  sha256(data, (size_t)len, sum);
  if (memcmp(hdr + 56, sum, sizeof sum))
    return "its bytes do not match their checksum";
  return NULL;
}

const char *disk_check(const uint8_t *file, size_t n,
                       const uint8_t key[DISK_KEY_LEN], uint64_t off,
                       uint64_t len) {
  if (n < DISK_HEADER) return "shorter than an entry's header";
  return check_entry(file, file + DISK_HEADER, n - DISK_HEADER, key, off, len);
}

static void entry_name(char out[NAME_LEN + 1], const uint8_t *key,
                       uint64_t off) {
  for (int i = 0; i < DISK_KEY_LEN; i++)
    snprintf(out + 2 * i, 3, "%02x", key[i]);
  snprintf(out + 2 * DISK_KEY_LEN, 18, "-%016" PRIx64, off);
}

static int is_entry_name(const char *n) {
  if (strlen(n) != NAME_LEN || n[2 * DISK_KEY_LEN] != '-') return 0;
  for (int i = 0; i < NAME_LEN; i++)
    if (i != 2 * DISK_KEY_LEN && !strchr("0123456789abcdef", n[i])) return 0;
  return 1;
}

/* ---- index (under d->lock) ---- */

static int by_name(const void *a, const void *b) {
  return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static struct dent *find(struct disk *d, const char *name) {
  struct dent k;
  snprintf(k.name, sizeof k.name, "%s", name);
  struct dent **e = tfind(&k, &d->tree, by_name);
  return e ? *e : NULL;
}

static void unlink_lru(struct disk *d, struct dent *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    d->mru = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    d->lru = e->prev;
  e->prev = e->next = NULL;
}

static void push_mru(struct disk *d, struct dent *e) {
  e->prev = NULL;
  e->next = d->mru;
  if (d->mru) d->mru->prev = e;
  d->mru = e;
  if (!d->lru) d->lru = e;
}

static void forget(struct disk *d, struct dent *e) {
  unlink_lru(d, e);
  tdelete(e, &d->tree, by_name);
  d->total -= e->bytes;
  free(e);
}

static struct dent *add(struct disk *d, const char *name, uint64_t bytes) {
  struct dent *e = find(d, name);
  if (e) {
    d->total -= e->bytes;
    unlink_lru(d, e);
  } else {
    if (!(e = calloc(1, sizeof *e))) return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!tsearch(e, &d->tree, by_name)) {
      free(e);
      return NULL;
    }
  }
  e->bytes = bytes;
  d->total += bytes;
  push_mru(d, e);
  return e;
}

/* Removes the least recently used entries until `need` more bytes fit. */
static int evict(struct disk *d, uint64_t need) {
  int n = 0;
  char path[PATH_MAX];
  while (d->lru && d->total + need > d->bound) {
    snprintf(path, sizeof path, "%s/%s", d->dir, d->lru->name);
    unlink(path);
    forget(d, d->lru);
    n++;
  }
  return n;
}

/* ---- opening: the index from the directory ---- */

static int older(const void *a, const void *b) {
  int64_t x = (*(struct dent *const *)a)->used;
  int64_t y = (*(struct dent *const *)b)->used;
  return (x > y) - (x < y);
}

/* A temporary file whose writer is gone is what a crash left. */
static void clear_temp(const char *dir, const char *name) {
  long pid;
  char path[PATH_MAX];
  if (sscanf(name, ".tmp-%ld-", &pid) != 1) return;
  if (pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) return;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path);
}

static int scan(struct disk *d, char *err, size_t errlen) {
  DIR *dir = opendir(d->dir);
  if (!dir) {
    snprintf(err, errlen, "cache dir %s: %s", d->dir, strerror(errno));
    return -1;
  }
  struct dent **all = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  struct stat st;
  while ((de = readdir(dir))) {
    clear_temp(d->dir, de->d_name);
    if (!is_entry_name(de->d_name) ||
        fstatat(dirfd(dir), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      struct dent **g = realloc(all, cap * sizeof *all);
      if (!g) break;
      all = g;
    }
    struct dent *e = add(d, de->d_name, (uint64_t)st.st_size);
    if (!e) break;
    e->used = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    all[n++] = e;
  }
  closedir(dir);
  /* The list in the order of last use, most recent first. */
  if (n) qsort(all, n, sizeof *all, older);
  for (size_t i = 0; i < n; i++) {
    unlink_lru(d, all[i]);
    push_mru(d, all[i]);
  }
  free(all);
  evict(d, 0);
  return 0;
}

static void free_entry(void *e) {
  free(e);
}

static void disk_free(struct disk *d) {
  writer_free(d->writer);
  tdestroy(d->tree, free_entry);
  pthread_mutex_destroy(&d->lock);
  free(d->dir);
  free(d);
}

/* One daemon per directory: each keeps the bound over the entries it
 * knows, so two would overshoot it together.  The directory's .owner names
 * the daemon (the supervisor, parent of every worker, so the workers of a
 * generation kept for its VMs and of the next one share it); another
 * daemon's claim stands while that process lives. */
static int claim(const char *dir, char *err, size_t errlen) {
  char path[PATH_MAX + 8], buf[32] = {0};
  snprintf(path, sizeof path, "%s/.owner", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX) < 0) {
    snprintf(err, errlen, "cache dir %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  long owner = pread(fd, buf, sizeof buf - 1, 0) > 0 ? atol(buf) : 0;
  long me = (long)getppid();
  int r = 0;
  if (owner > 0 && owner != me &&
      (kill((pid_t)owner, 0) == 0 || errno != ESRCH)) {
    snprintf(err, errlen,
             "cache dir %s is used by another daemon (pid %ld): give each "
             "daemon a directory of its own",
             dir, owner);
    errno = EBUSY;
    r = -1;
  } else if (owner != me) {
    int n = snprintf(buf, sizeof buf, "%ld\n", me);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
      snprintf(err, errlen, "cache dir %s: %s", path, strerror(errno));
      r = -1;
    }
  }
  int e = errno;
  close(fd); /* and the lock with it */
  errno = e;
  return r;
}

static void write_job(void *arg, const struct wjob *j) {
  struct disk *d = arg;
  const void *buf = j->buf ? j->buf : d->calls->borrow(j->ctx, j->off, j->len);
  if (!buf) {
    d->calls->done(j->ctx, -1, ESTALE);
    return;
  }
  int n = disk_put(d, j->key, j->off, buf, j->len);
  int e = n < 0 ? errno : 0;
  if (!j->buf) d->calls->give_back(j->ctx, buf, j->off, j->len);
  d->calls->done(j->ctx, n, e);
}

static int same_use(struct disk *d, uint64_t bound, unsigned depth, char *err,
                    size_t errlen) {
  if (d->bound == bound && d->depth == depth) return 1;
  errno = EINVAL;
  snprintf(err, errlen,
           "cache dir %s is already in use with dir_size %" PRIu64
           " and dir_queue %u, not %" PRIu64 " and %u",
           d->dir, d->bound, d->depth, bound, depth);
  return 0;
}

static struct disk *disk_new(const char *real, uint64_t bound, unsigned depth,
                             const struct disk_calls *calls, char *err,
                             size_t errlen) {
  struct disk *d = calloc(1, sizeof *d);
  if (!d || !(d->dir = strdup(real))) {
    free(d);
    errno = ENOMEM;
    snprintf(err, errlen, "cache dir %s: out of memory", real);
    return NULL;
  }
  d->bound = bound;
  d->depth = depth;
  d->calls = calls;
  d->refs = 1;
  pthread_mutex_init(&d->lock, NULL);
  if (claim(real, err, errlen) < 0 || scan(d, err, errlen) < 0) {
    disk_free(d);
    return NULL;
  }
  if (!(d->writer = writer_new(depth, write_job, d))) {
    snprintf(err, errlen, "cache dir %s: no writer thread: %s", real,
             strerror(errno));
    disk_free(d);
    return NULL;
  }
  return d;
}

struct disk *disk_open(const char *dir, uint64_t bound, unsigned depth,
                       const struct disk_calls *calls, char *err,
                       size_t errlen) {
  char real[PATH_MAX];
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    snprintf(err, errlen, "cache dir %s: %s", dir, strerror(errno));
    return NULL;
  }
  if (!realpath(dir, real)) {
    snprintf(err, errlen, "cache dir %s: %s", dir, strerror(errno));
    return NULL;
  }
  pthread_mutex_lock(&registry_lock);
  struct disk *d = registry;
  while (d && strcmp(d->dir, real))
    d = d->next_open;
  if (d && !same_use(d, bound, depth, err, errlen)) {
    d = NULL;
  } else if (d) {
    d->refs++;
  } else if ((d = disk_new(real, bound, depth, calls, err, errlen))) {
    d->next_open = registry;
    registry = d;
  }
  pthread_mutex_unlock(&registry_lock);
  return d;
}

void disk_close(struct disk *d) {
  if (!d) return;
  pthread_mutex_lock(&registry_lock);
  if (--d->refs == 0) {
    struct disk **p = &registry;
    while (*p != d)
      p = &(*p)->next_open;
    *p = d->next_open;
    disk_free(d);
  }
  pthread_mutex_unlock(&registry_lock);
}

/* ---- reading and writing ---- */

static int discard(struct disk *d, const char *name, const char *path,
                   const char *what, char *why, size_t whylen) {
  snprintf(why, whylen, "cache dir entry %s: %s; removed", path, what);
  unlink(path);
  pthread_mutex_lock(&d->lock);
  struct dent *e = find(d, name);
  if (e) forget(d, e);
  pthread_mutex_unlock(&d->lock);
  return DISK_DISCARDED;
}

int disk_get(struct disk *d, const uint8_t key[DISK_KEY_LEN], uint64_t off,
             void *buf, uint64_t len, char *why, size_t whylen) {
  char name[NAME_LEN + 1], path[PATH_MAX];
  uint8_t hdr[DISK_HEADER];
  struct stat st;
  entry_name(name, key, off);
  snprintf(path, sizeof path, "%s/%s", d->dir, name);
  if (writer_find(d->writer, key, off, buf, len)) return DISK_HIT;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return DISK_MISS;
  const char *bad = NULL;
  if (fstat(fd, &st) < 0 ||
      pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
    bad = "shorter than an entry's header";
  else if ((uint64_t)st.st_size != DISK_HEADER + len ||
           pread(fd, buf, len, DISK_HEADER) != (ssize_t)len)
    bad = "its length is wrong (torn)";
  else
    bad = check_entry(hdr, buf, len, key, off, len);
  if (!bad) futimens(fd, (struct timespec[]){{0, UTIME_OMIT}, {0, UTIME_NOW}});
  close(fd);
  if (bad) return discard(d, name, path, bad, why, whylen);
  pthread_mutex_lock(&d->lock);
  struct dent *e = find(d, name);
  if (e) {
    unlink_lru(d, e);
    push_mru(d, e);
  } else {
    add(d, name, DISK_HEADER + len); /* written by another process */
  }
  pthread_mutex_unlock(&d->lock);
  return DISK_HIT;
}

static int write_temp(const char *tmp, const uint8_t *hdr, const void *buf,
                      uint64_t len) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  struct iovec iov[2] = {{(void *)hdr, DISK_HEADER}, {(void *)buf, len}};
  ssize_t n = pwritev(fd, iov, 2, 0);
  int ok = n == (ssize_t)(DISK_HEADER + len) && fsync(fd) == 0;
  int e = n < 0 ? errno : EIO;
  close(fd);
  if (ok) return 0;
  unlink(tmp);
  errno = e;
  return -1;
}

int disk_put(struct disk *d, const uint8_t key[DISK_KEY_LEN], uint64_t off,
             const void *buf, uint64_t len) {
  uint64_t bytes = DISK_HEADER + len;
  if (bytes > d->bound) {
    errno = EFBIG;
    return -1;
  }
  char name[NAME_LEN + 1], path[PATH_MAX], tmp[PATH_MAX];
  uint8_t hdr[DISK_HEADER] = {0};
  memcpy(hdr, MAGIC, sizeof MAGIC);
  put64(hdr + 8, off);
  put64(hdr + 16, len);
  memcpy(hdr + 24, key, DISK_KEY_LEN);
  sha256(buf, (size_t)len, hdr + 56);
  entry_name(name, key, off);
  snprintf(path, sizeof path, "%s/%s", d->dir, name);

  /* The bytes are reserved before the write, so writers side by side
   * never overshoot the bound together. */
  pthread_mutex_lock(&d->lock);
  int evicted = evict(d, bytes);
  d->total += bytes;
  unsigned long n = d->tmp_counter++;
  pthread_mutex_unlock(&d->lock);

  snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%lu", d->dir, (long)getpid(), n);
  int r = write_temp(tmp, hdr, buf, len);
  if (r == 0 && rename(tmp, path) < 0) {
    r = -1;
    unlink(tmp);
  }
  int e = errno;
  pthread_mutex_lock(&d->lock);
  d->total -= bytes;
  if (r == 0 && !add(d, name, bytes)) unlink(path);
  pthread_mutex_unlock(&d->lock);
  errno = e;
  return r < 0 ? -1 : evicted;
}

int disk_put_later(struct disk *d, const uint8_t key[DISK_KEY_LEN],
                   uint64_t off, const void *buf, uint64_t len, void *ctx) {
  return writer_put(d->writer, key, off, buf, len, ctx);
}

void disk_drain(struct disk *d, const void *ctx) {
  if (d) writer_drain(d->writer, ctx);
}

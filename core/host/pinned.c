#include "pinned.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

/* O_CLOEXEC is always set and says nothing about the file. */
#define KEY_FLAGS(f) ((f) & ~O_CLOEXEC)

struct pinset {
  pthread_mutex_t lock;
  struct pinrec pins;
  int cap;
  int gen;
  uint32_t serial; /* a restore's (pinset_new_for) */
  int ipc;
  char owner[64]; /* a per-restore listener, or "" for generation gen */
};

static _Thread_local struct pinset *scope;
static _Thread_local struct pinrec *recorder;

static struct pinfile *find(struct pinrec *r, const char *path, int flags) {
  for (int i = 0; i < r->n; i++)
    if (r->f[i].flags == flags && !strcmp(r->f[i].path, path)) return &r->f[i];
  return NULL;
}

/* Appends (path, flags, fd) to r, which takes fd.  0, or -1 (fd kept by
 * the caller). */
static int add(struct pinrec *r, int *cap, const char *path, int flags,
               int fd) {
  if (r->n == *cap) {
    int c = *cap ? 2 * *cap : 8;
    struct pinfile *p = realloc(r->f, (size_t)c * sizeof *p);
    if (!p) return -1;
    r->f = p;
    *cap = c;
  }
  char *copy = strdup(path);
  if (!copy) return -1;
  r->f[r->n++] = (struct pinfile){.path = copy, .flags = flags, .fd = fd};
  return 0;
}

struct pinset *pinset_new(int gen, int ipc) {
  struct pinset *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_mutex_init(&s->lock, NULL);
  s->gen = gen;
  s->ipc = ipc;
  return s;
}

struct pinset *pinset_new_for(const char *owner, uint32_t serial, int ipc) {
  struct pinset *s = pinset_new(0, ipc);
  if (s) s->serial = serial;
  if (s) snprintf(s->owner, sizeof s->owner, "%s", owner);
  return s;
}

void pinrec_clear(struct pinrec *r) {
  for (int i = 0; i < r->n; i++) {
    close(r->f[i].fd);
    free(r->f[i].path);
  }
  free(r->f);
  r->f = NULL;
  r->n = 0;
}

void pinset_free(struct pinset *s) {
  if (!s) return;
  pinrec_clear(&s->pins);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int pinned_meta(const char *path, int flags) {
  int m = memfd_create("uffdkit-pinned", MFD_CLOEXEC);
  if (m < 0) return -1;
  char head[32];
  int hl = snprintf(head, sizeof head, "%d\n", flags);
  size_t pl = strlen(path);
  if (write(m, head, (size_t)hl) != hl || write(m, path, pl) != (ssize_t)pl) {
    close(m);
    return -1;
  }
  return m;
}

int pinned_meta_read(int meta, char *path, int len, int *flags) {
  char buf[PATH_MAX + 32];
  ssize_t r = pread(meta, buf, sizeof buf - 1, 0);
  if (r <= 0) return -1;
  buf[r] = 0;
  char *nl = strchr(buf, '\n');
  if (!nl || !nl[1] || (int)strlen(nl + 1) >= len) return -1;
  *flags = atoi(buf);
  snprintf(path, (size_t)len, "%s", nl + 1);
  return 0;
}

/* Tells the supervisor, which keeps it for the generation's (or the
 * restore's) next workers; a worker that cannot still serves, only without
 * the pin. */
static void report(const struct pinset *s, const char *path, int flags,
                   int fd) {
  if (s->ipc < 0) return;
  int meta = pinned_meta(path, flags);
  struct ipc_msg m = {.type = IPC_PIN,
                      .id = s->owner[0] ? s->serial : (uint64_t)s->gen};
  memcpy(m.name, s->owner, sizeof m.name);
  int fds[2] = {fd, meta};
  if (meta < 0 || ipc_send(s->ipc, &m, fds, 2) < 0) {
    if (s->owner[0])
      log_warn("%s: could not pin the file for restore %s's next workers: %s",
               path, s->owner, strerror(errno));
    else
      log_warn("%s: could not pin the file for configuration generation %d's "
               "next workers: %s",
               path, s->gen, strerror(errno));
  }
  if (meta >= 0) close(meta);
}

/* Pins a copy of fd in s for (path, key) and reports it; s locked. */
static void pin(struct pinset *s, const char *path, int key, int fd) {
  int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (keep >= 0 && add(&s->pins, &s->cap, path, key, keep) == 0)
    report(s, path, key, keep);
  else if (keep >= 0)
    close(keep);
}

static int pinnable(int fd, int flags) {
  struct stat st;
  return (flags & O_ACCMODE) == O_RDONLY && fstat(fd, &st) == 0 &&
         S_ISREG(st.st_mode);
}

static void record(const char *path, int key, int fd) {
  if (!recorder || fd < 0) return;
  int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int cap = recorder->n; /* grown one by one: a stack opens few files */
  if (keep >= 0 && add(recorder, &cap, path, key, keep) < 0) close(keep);
}

void pinned_scope(struct pinset *set, struct pinrec *rec) {
  scope = set;
  recorder = rec;
}

int pinned_open(const char *path, int flags) {
  int key = KEY_FLAGS(flags), fd, e;
  struct pinset *s = scope;
  if (!s) {
    fd = open(path, key | O_CLOEXEC);
    e = errno;
  } else {
    pthread_mutex_lock(&s->lock);
    struct pinfile *p = find(&s->pins, path, key);
    fd = p ? fcntl(p->fd, F_DUPFD_CLOEXEC, 0) : open(path, key | O_CLOEXEC);
    e = errno;
    if (!p && fd >= 0 && pinnable(fd, key)) pin(s, path, key, fd);
    pthread_mutex_unlock(&s->lock);
  }
  if (fd >= 0 && pinnable(fd, key)) record(path, key, fd);
  errno = e;
  return fd;
}

int pinset_adopt(struct pinset *s, int fd, int meta) {
  char path[PATH_MAX];
  int flags, rc = -1;
  pthread_mutex_lock(&s->lock);
  if (fd >= 0 && meta >= 0 &&
      pinned_meta_read(meta, path, sizeof path, &flags) == 0 &&
      !find(&s->pins, path, flags) &&
      add(&s->pins, &s->cap, path, flags, fd) == 0)
    rc = 0;
  pthread_mutex_unlock(&s->lock);
  if (rc < 0 && fd >= 0) close(fd);
  if (meta >= 0) close(meta);
  return rc;
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int pinrec_same(const struct pinrec *rec, struct pinset *set) {
  int same = 1;
  pthread_mutex_lock(&set->lock);
  for (int i = 0; i < rec->n && same; i++) {
    const struct pinfile *f = &rec->f[i];
    struct pinfile *p = find(&set->pins, f->path, f->flags);
    struct stat had, now;
    same = fstat(f->fd, &had) == 0 &&
           (p ? fstat(p->fd, &now) : stat(f->path, &now)) == 0 &&
           same_file(&had, &now);
  }
  pthread_mutex_unlock(&set->lock);
  return same;
}

void pinrec_share(const struct pinrec *rec, struct pinset *set) {
  pthread_mutex_lock(&set->lock);
  for (int i = 0; i < rec->n; i++)
    if (!find(&set->pins, rec->f[i].path, rec->f[i].flags))
      pin(set, rec->f[i].path, rec->f[i].flags, rec->f[i].fd);
  pthread_mutex_unlock(&set->lock);
}

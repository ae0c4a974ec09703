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

struct pin {
  char owner[64]; /* "" for the generation, else a per-restore listener */
  char *path;
  int flags;
  int fd;
};

/* Whose files this thread's opens pin (pinned_scope). */
static __thread char scope[64];

static struct {
  pthread_mutex_t lock;
  struct pin *p;
  int n, cap;
  int ipc;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .ipc = -1};

static struct pin *find(const char *owner, const char *path, int flags) {
  for (int i = 0; i < T.n; i++)
    if (T.p[i].flags == flags && !strcmp(T.p[i].path, path) &&
        !strcmp(T.p[i].owner, owner))
      return &T.p[i];
  return NULL;
}

static int add(const char *owner, const char *path, int flags, int fd) {
  if (T.n == T.cap) {
    int cap = T.cap ? 2 * T.cap : 8;
    struct pin *p = realloc(T.p, (size_t)cap * sizeof *p);
    if (!p) return -1;
    T.p = p;
    T.cap = cap;
  }
  char *copy = strdup(path);
  if (!copy) return -1;
  T.p[T.n] = (struct pin){.path = copy, .flags = flags, .fd = fd};
  snprintf(T.p[T.n].owner, sizeof T.p[T.n].owner, "%s", owner);
  T.n++;
  return 0;
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

/* Tells the supervisor, which keeps it for the generation's next workers;
 * a worker that cannot still serves, only without the pin. */
static void report(const char *path, int flags, int fd) {
  int meta = pinned_meta(path, flags);
  struct ipc_msg m = {.type = IPC_PIN};
  memcpy(m.name, scope, sizeof m.name);
  int fds[2] = {fd, meta};
  if (meta < 0 || ipc_send(T.ipc, &m, fds, 2) < 0)
    log_warn("%s: could not pin the file for this generation's next "
             "workers: %s",
             path, strerror(errno));
  if (meta >= 0) close(meta);
}

static int pinnable(int fd, int flags) {
  struct stat st;
  return (flags & O_ACCMODE) == O_RDONLY && fstat(fd, &st) == 0 &&
         S_ISREG(st.st_mode);
}

int pinned_open(const char *path, int flags) {
  int key = KEY_FLAGS(flags);
  pthread_mutex_lock(&T.lock);
  struct pin *p = find(scope, path, key);
  int fd = p ? fcntl(p->fd, F_DUPFD_CLOEXEC, 0) : open(path, key | O_CLOEXEC);
  int e = errno;
  if (!p && fd >= 0 && pinnable(fd, key)) {
    int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (keep >= 0 && add(scope, path, key, keep) == 0) {
      if (T.ipc >= 0) report(path, key, keep);
    } else if (keep >= 0) {
      close(keep);
    }
  }
  pthread_mutex_unlock(&T.lock);
  errno = e;
  return fd;
}

int pinned_adopt(int fd, int meta) {
  return pinned_adopt_for("", fd, meta);
}

int pinned_adopt_for(const char *owner, int fd, int meta) {
  char path[PATH_MAX];
  int flags, rc = -1;
  pthread_mutex_lock(&T.lock);
  if (fd >= 0 && meta >= 0 &&
      pinned_meta_read(meta, path, sizeof path, &flags) == 0 &&
      !find(owner, path, flags) && add(owner, path, flags, fd) == 0)
    rc = 0;
  pthread_mutex_unlock(&T.lock);
  if (rc < 0 && fd >= 0) close(fd);
  if (meta >= 0) close(meta);
  return rc;
}

void pinned_scope(const char *owner) {
  snprintf(scope, sizeof scope, "%s", owner ? owner : "");
}

void pinned_drop(const char *owner) {
  pthread_mutex_lock(&T.lock);
  int k = 0;
  for (int i = 0; i < T.n; i++)
    if (strcmp(T.p[i].owner, owner)) {
      T.p[k++] = T.p[i];
    } else {
      close(T.p[i].fd);
      free(T.p[i].path);
    }
  T.n = k;
  pthread_mutex_unlock(&T.lock);
}

void pinned_report(int ipc) {
  pthread_mutex_lock(&T.lock);
  T.ipc = ipc;
  pthread_mutex_unlock(&T.lock);
}

void pinned_clear(void) {
  pthread_mutex_lock(&T.lock);
  for (int i = 0; i < T.n; i++) {
    close(T.p[i].fd);
    free(T.p[i].path);
  }
  free(T.p);
  T.p = NULL;
  T.n = T.cap = 0;
  T.ipc = -1;
  pthread_mutex_unlock(&T.lock);
}

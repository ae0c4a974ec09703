#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "snap.h"

volatile sig_atomic_t snap_interrupted;

void snap_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("uffdkit-snap: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int snap_check_interrupt(void) {
  if (!snap_interrupted) return 0;
  snap_error("interrupted by signal %d", (int)snap_interrupted);
  return -1;
}

char *snap_path(const char *dir, const char *id, const char *file) {
  char *p;
  int n = file ? asprintf(&p, "%s/%s/%s", dir, id, file)
               : asprintf(&p, "%s/%s", dir, id);
  if (n < 0) {
    snap_error("out of memory");
    return NULL;
  }
  return p;
}

int snap_parse_id(const char *s, uint8_t id[16]) {
  if (strlen(s) == 36 && uuid_parse(s, id) == 0) return 0;
  snap_error("'%s' is not a build id (a UUID such as "
             "0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b)",
             s);
  return -1;
}

int snap_pread(int fd, void *buf, size_t len, uint64_t off, const char *name) {
  uint8_t *p = buf;
  while (len) {
    ssize_t r = pread(fd, p, len, (off_t)off);
    if (r < 0 && errno == EINTR && !snap_interrupted) continue;
    if (r <= 0) {
      snap_error("%s: cannot read %zu bytes at offset %llu: %s", name, len,
                 (unsigned long long)off,
                 r == 0 ? "unexpected end of file" : strerror(errno));
      return -1;
    }
    p += r;
    off += (uint64_t)r;
    len -= (size_t)r;
  }
  return 0;
}

int snap_write(int fd, const void *buf, size_t len, const char *name) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR && !snap_interrupted) continue;
    if (w < 0) {
      snap_error("%s: cannot write %zu bytes: %s", name, len, strerror(errno));
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int snap_is_zero(const void *buf, size_t len) {
  const uint8_t *p = buf;
  /* A block equal to itself shifted by one byte is one repeated byte. */
  return len == 0 || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

uint64_t *bitmap_new(uint64_t nblocks) {
  uint64_t *b = calloc(bitmap_words(nblocks), sizeof *b);
  if (!b)
    snap_error("out of memory for a bitmap of %llu blocks",
               (unsigned long long)nblocks);
  return b;
}

void progress_start(struct progress *p, const char *what, uint64_t total) {
  p->on = isatty(STDERR_FILENO);
  p->shown = -1;
  p->total = total ? total : 1;
  p->what = what;
  progress_set(p, 0);
}

void progress_set(struct progress *p, uint64_t done) {
  if (!p->on) return;
  int pct = (int)(done * 100 / p->total);
  if (pct == p->shown) return;
  p->shown = pct;
  char bar[41];
  int fill = pct * 40 / 100;
  memset(bar, '#', (size_t)fill);
  memset(bar + fill, '.', (size_t)(40 - fill));
  bar[40] = 0;
  fprintf(stderr, "\r%-8s [%s] %3d%%", p->what, bar, pct);
  fflush(stderr);
}

void progress_end(struct progress *p) {
  if (p->on) fputs("\r\033[K", stderr);
  p->on = 0;
}

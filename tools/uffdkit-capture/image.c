/* Copies the segments of a layout out of the running processes into an
 * image file through one bounded buffer, and counts its pages. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include "capture.h"

#define BUF_SIZE (1u << 20)

/* Reads one page; process_vm_readv first, /proc/PID/mem where that is not
 * permitted (some kernels and LSMs allow the one and not the other). */
static int read_page(pid_t pid, uint64_t addr, char *dst) {
  struct iovec local = {dst, CAP_PAGE};
  struct iovec remote = {(void *)(uintptr_t)addr, CAP_PAGE};
  if (process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)CAP_PAGE)
    return 0;
  if (errno != EPERM && errno != ENOSYS) return -1;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = pread(fd, dst, CAP_PAGE, (off_t)addr);
  close(fd);
  return n == (ssize_t)CAP_PAGE ? 0 : -1;
}

/* Fills dst with len bytes from addr; pages that cannot be read (unmapped
 * since the layout was made, guard pages) become zeros and are counted. */
static void read_range(pid_t pid, uint64_t addr, char *dst, size_t len,
                       struct image_stats *st) {
  struct iovec local = {dst, len};
  struct iovec remote = {(void *)(uintptr_t)addr, len};
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  size_t done = n > 0 ? (size_t)n / CAP_PAGE * CAP_PAGE : 0;
  for (; done < len; done += CAP_PAGE) {
    if (read_page(pid, addr + done, dst + done) < 0) {
      memset(dst + done, 0, CAP_PAGE);
      st->unreadable++;
    }
  }
}

static int is_zero(const char *p) {
  static const char zero[CAP_PAGE];
  return memcmp(p, zero, CAP_PAGE) == 0;
}

/* Counts the pages of buf, comparing with the same offsets of prev (whose
 * pages past its end read as zeros). */
static int count_pages(const char *buf, size_t len, int prev, uint64_t off,
                       char *pbuf, struct image_stats *st) {
  ssize_t got = 0;
  if (prev >= 0) {
    got = pread(prev, pbuf, len, (off_t)off);
    if (got < 0) return -1;
    memset(pbuf + got, 0, len - (size_t)got);
  }
  for (size_t i = 0; i < len; i += CAP_PAGE) {
    int zero = is_zero(buf + i);
    st->pages++;
    st->zero += zero;
    if (prev >= 0 && memcmp(buf + i, pbuf + i, CAP_PAGE) != 0) st->changed++;
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int copy_segments(const struct layout *l, int fd, int prev,
                         struct image_stats *st) {
  char *buf = malloc(BUF_SIZE), *pbuf = malloc(BUF_SIZE);
  int rc = buf && pbuf ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < l->n; i++) {
    const struct segment *g = &l->seg[i];
    for (uint64_t a = g->start; rc == 0 && a < g->end; a += BUF_SIZE) {
      size_t len = g->end - a < BUF_SIZE ? g->end - a : BUF_SIZE;
      uint64_t off = g->offset + (a - g->start);
      read_range(g->pid, a, buf, len, st);
      if (count_pages(buf, len, prev, off, pbuf, st) < 0 ||
          write_all(fd, buf, len) < 0 || cap_interrupted)
        rc = -1;
    }
  }
  free(buf);
  free(pbuf);
  return rc;
}

/* A snapshot is taken of a paused VM: stop the processes so one image is one
 * moment.  Waits until each reports the stopped state. */
static void set_stopped(const struct capture_opts *o, int stop) {
  for (size_t i = 0; i < o->npids; i++)
    kill(o->pids[i], stop ? SIGSTOP : SIGCONT);
  for (size_t i = 0; stop && i < o->npids; i++) {
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)o->pids[i]);
    for (int tries = 0; tries < 400; tries++) {
      FILE *f = fopen(path, "re");
      size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
      if (f) fclose(f);
      buf[n] = '\0';
      char *p = strrchr(buf, ')');
      if (!p || p[1] == '\0' || p[2] == 'T' || p[2] == 't') break;
      usleep(5000);
    }
  }
}

/* Address space reserved but never touched (a sanitizer's shadow, a
 * runtime's arena) shows as writable anonymous mappings of terabytes.  It is
 * not memory a guest would hold: refuse images larger than the machine's
 * memory instead of writing them. */
static int check_reserved(const struct layout *l, const char *out) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return 0;
  uint64_t ram = (uint64_t)si.totalram * si.mem_unit;
  if (l->size <= ram) return 0;
  const struct segment *big = &l->seg[0];
  for (size_t i = 1; i < l->n; i++)
    if (l->seg[i].end - l->seg[i].start > big->end - big->start)
      big = &l->seg[i];
  fprintf(stderr,
          "uffdkit-capture: %s: the mappings take %" PRIu64
          " bytes, more than this machine's memory (%" PRIu64
          "): reserved address space, not memory; the largest is %" PRIx64
          "-%" PRIx64 " %s of process %d\n",
          out, l->size, ram, big->start, big->end,
          big->name[0] ? big->name : "(anonymous)", (int)big->pid);
  return -1;
}

int image_write(const struct layout *l, const struct capture_opts *o,
                const char *out, const char *prev, struct image_stats *st) {
  uint64_t size = o->size > l->size ? o->size : l->size;
  if (check_reserved(l, out) < 0) return -1;
  if (o->size && l->size > o->size) {
    fprintf(stderr,
            "uffdkit-capture: %s: the mappings take %" PRIu64
            " bytes, more than --size %" PRIu64 "\n",
            out, l->size, o->size);
    return -1;
  }
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", out);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int pfd = prev ? open(prev, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0 || (prev && pfd < 0)) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", fd < 0 ? tmp : prev,
            strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    return -1;
  }
  *st = (struct image_stats){0};
  if (!o->no_stop) set_stopped(o, 1);
  int rc = copy_segments(l, fd, pfd, st);
  if (!o->no_stop) set_stopped(o, 0);
  /* The padding models guest memory never touched: zero pages, a hole. */
  if (rc == 0 && ftruncate(fd, (off_t)size) < 0) rc = -1;
  uint64_t pad = (size - l->size) / CAP_PAGE;
  st->pages += pad;
  st->zero += pad;
  if (rc < 0)
    fprintf(stderr, "uffdkit-capture: writing %s failed: %s\n", tmp,
            cap_interrupted ? "interrupted" : strerror(errno));
  if (close(fd) != 0) rc = -1;
  if (pfd >= 0) close(pfd);
  if (rc == 0 && rename(tmp, out) != 0) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", out, strerror(errno));
    rc = -1;
  }
  if (rc < 0) unlink(tmp);
  return rc;
}

void image_print(const char *out, const struct image_stats *st, int has_prev) {
  double pages = st->pages ? (double)st->pages : 1;
  printf("%s: %" PRIu64 " bytes, %" PRIu64 " pages, zero %.1f%%, "
         "unreadable %" PRIu64,
         out, st->pages * CAP_PAGE, st->pages, 100.0 * st->zero / pages,
         st->unreadable);
  if (has_prev)
    printf(", changed vs previous %" PRIu64 " (%.1f%%)", st->changed,
           100.0 * st->changed / pages);
  printf("\n");
  fflush(stdout);
}

#include "rawfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ufk_file_holes(int fd, uint64_t off, uint64_t len, ufk_extent_fn fn,
                   void *opaque) {
  uint64_t end = off + len, pos = off;
  while (pos < end) {
    off_t hole = lseek(fd, (off_t)pos, SEEK_HOLE);
    if (hole < 0) return errno == ENXIO ? 0 : -1;
    if ((uint64_t)hole >= end) return 0;
    off_t data = lseek(fd, hole, SEEK_DATA);
    uint64_t hole_end = data < 0 ? end : (uint64_t)data;
    if (data < 0 && errno != ENXIO) return -1;
    if (hole_end > end) hole_end = end;
    if (fn(opaque, (uint64_t)hole, hole_end - (uint64_t)hole, UFK_EXTENT_ZERO) <
        0)
      return -1;
    pos = hole_end;
  }
  return 0;
}

void ufk_file_identity(const struct stat *st, char *buf, size_t len) {
  snprintf(buf, len, "file:%llu:%llu:%llu:%lld.%09ld",
           (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
           (unsigned long long)st->st_size, (long long)st->st_mtim.tv_sec,
           st->st_mtim.tv_nsec);
}

int ufk_file_read(const struct ufk_host *host, int fd, const char *path,
                  void *buf, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : EIO;
      host->error(e, "%s: reading %llu bytes at %llu: %s", path,
                  (unsigned long long)len, (unsigned long long)off,
                  r < 0 ? strerror(e) : "file ended early");
      errno = e;
      return -1;
    }
    done += (uint64_t)r;
  }
  return 0;
}

int ufk_open_data(const struct ufk_host *host, const char *path, int flags) {
  if (UFK_HOST_HAS(host, open_file)) return host->open_file(path, flags);
  return open(path, flags | O_CLOEXEC);
}

int ufk_open_raw(const struct ufk_host *host, const char *path, int flags,
                 struct stat *st) {
  int fd = ufk_open_data(host, path, flags);
  if (fd < 0 || fstat(fd, st) < 0) {
    int e = errno;
    host->error(e, "%s: %s", path, strerror(e));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!S_ISREG(st->st_mode) || st->st_size == 0) {
    host->error(EINVAL, "%s: not a non-empty regular file", path);
    close(fd);
    return -1;
  }
  return fd;
}

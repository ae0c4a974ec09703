#include "sockdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory fd is in, one component further: made if missing. */
static int step(int fd, const char *comp, const char *dir, char *err,
                size_t errlen) {
  int flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int n = openat(fd, comp, flags);
  if (n < 0 && errno == ENOENT) {
    if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot create %s in %s: %s", comp, dir,
               strerror(errno));
      return -1;
    }
    n = openat(fd, comp, flags);
  }
  if (n < 0)
    snprintf(err, errlen, "%s in %s: %s", comp, dir,
             errno == ELOOP || errno == ENOTDIR
                 ? "a symbolic link or not a directory (no link is followed "
                   "on the way to a per-restore socket)"
                 : strerror(errno));
  return n;
}

int sockdir_make(const char *path, char *err, size_t errlen) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return 0; /* in the working directory */
  *slash = 0;
  int fd = open(dir[0] || path[0] == '/' ? "/" : ".",
                O_PATH | O_DIRECTORY | O_CLOEXEC);
  char walk[PATH_MAX], *save = NULL;
  snprintf(walk, sizeof walk, "%s", dir);
  for (char *c = strtok_r(walk, "/", &save); c && fd >= 0;
       c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) {
      snprintf(err, errlen, "%s: '..' in the socket's directory", dir);
      close(fd);
      return -1;
    }
    int n = step(fd, c, dir, err, errlen);
    close(fd);
    fd = n;
  }
  if (fd < 0) return -1;
  struct stat st;
  int r = fstat(fd, &st);
  close(fd);
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return -1;
  }
  if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
      ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
    snprintf(err, errlen,
             "%s is owned by uid %u with mode %04o: a per-restore socket's "
             "directory must be root's or the daemon's and not writable by "
             "others",
             dir[0] ? dir : "/", (unsigned)st.st_uid,
             (unsigned)(st.st_mode & 07777));
    return -1;
  }
  return 0;
}

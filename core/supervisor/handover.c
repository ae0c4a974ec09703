#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "selfexe.h"

#define ENV_FDS "UFFDKIT_FDS"
#define ENV_PID "UFFDKIT_FDS_PID"

static void add(struct handed **out, int *n, int *cap, int fd,
                const char *name) {
  if (*n == *cap) {
    int more = *cap ? 2 * *cap : 64;
    struct handed *a = realloc(*out, (size_t)more * sizeof **out);
    if (!a) {
      log_error("descriptor %d handed over as '%s': out of memory; closing it",
                fd, name);
      close(fd);
      return;
    }
    *out = a;
    *cap = more;
  }
  (*out)[*n].fd = fd;
  snprintf((*out)[*n].name, sizeof(*out)[*n].name, "%s", name);
  (*n)++;
}

/* $UFFDKIT_FDS: "fd=name,fd=name,..." set by handover_exec. */
static int collect_ours(struct handed **out, int *n, int *cap) {
  const char *list = getenv(ENV_FDS), *pid = getenv(ENV_PID);
  if (!list) return 0;
  int mine = pid && atol(pid) == (long)getpid();
  char *copy = strdup(list), *save = NULL;
  if (!copy) {
    log_error("%s: out of memory; the descriptors it names are not adopted",
              ENV_FDS);
    return -1;
  }
  for (char *tok = strtok_r(copy, ",", &save); tok && mine;
       tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    int fd = eq ? atoi(tok) : -1;
    if (fd < 3 || fcntl(fd, F_GETFD) < 0) {
      log_error("%s: '%s' is not an open descriptor", ENV_FDS, tok);
      continue;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    add(out, n, cap, fd, eq + 1);
  }
  free(copy);
  unsetenv(ENV_FDS);
  unsetenv(ENV_PID);
  return 0;
}

int handover_collect(struct handed **out) {
  int n = 0, cap = 0;
  *out = NULL;
  char **names = NULL;
  int k = listen_fds_with_names(1, &names);
  if (k < 0) {
    log_error("descriptors passed by the service manager are malformed: %s",
              strerror(errno));
    return -1;
  }
  for (int i = 0; i < k; i++)
    add(out, &n, &cap, LISTEN_FDS_START + i, names ? names[i] : "unknown");
  listen_fds_free_names(names);
  collect_ours(out, &n, &cap);
  return n;
}

int handover_take(struct handed *h, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && !strcmp(h[i].name, name)) {
      int fd = h[i].fd;
      h[i].fd = -1;
      return fd;
    }
  return -1;
}

int handover_exec(int exe_fd, char *const *argv, const struct handed *h,
                  int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++)
    len += strlen(h[i].name) + 16;
  char *list = calloc(1, len), *p = list;
  if (!list) {
    errno = ENOMEM;
    return -1;
  }
  for (int i = 0; i < n; i++) {
    p += sprintf(p, "%s%d=%s", i ? "," : "", h[i].fd, h[i].name);
    fcntl(h[i].fd, F_SETFD, 0);
  }
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv(ENV_FDS, list, 1);
  setenv(ENV_PID, pid, 1);
  free(list);
  selfexe_exec(exe_fd, argv);
  int e = errno;
  unsetenv(ENV_FDS);
  unsetenv(ENV_PID);
  for (int i = 0; i < n; i++)
    fcntl(h[i].fd, F_SETFD, FD_CLOEXEC);
  errno = e;
  return -1;
}

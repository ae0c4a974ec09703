#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc.h"

#define FDNAME_MAX 255

/* Fills *a from $NOTIFY_SOCKET.  Returns the address length, 0 if the
 * variable is unset or empty, -1 with errno if it names no usable socket. */
static socklen_t notify_address(struct sockaddr_un *a) {
  const char *e = getenv("NOTIFY_SOCKET");
  if (!e || !*e) return 0;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  size_t len = strlen(e);
  if (e[0] != '/' && e[0] != '@') {
    errno = EAFNOSUPPORT; /* e.g. vsock:, which this daemon never needs */
    return (socklen_t)-1;
  }
  if (e[0] == '@') {
    /* Abstract: a leading NUL and no terminator, the length says where the
     * name ends. */
    if (len < 2 || len > sizeof a->sun_path) {
      errno = len < 2 ? EINVAL : ENAMETOOLONG;
      return (socklen_t)-1;
    }
    memcpy(a->sun_path + 1, e + 1, len - 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  }
  if (len >= sizeof a->sun_path) {
    errno = ENAMETOOLONG;
    return (socklen_t)-1;
  }
  memcpy(a->sun_path, e, len);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

int notify_send(const char *msg, const int *fds, int nfds) {
  if (!msg || nfds < 0 || nfds > NOTIFY_MAX_FDS || (nfds && !fds)) {
    errno = EINVAL;
    return -1;
  }
  struct sockaddr_un a;
  socklen_t alen = notify_address(&a);
  if (alen == 0) return 0;
  if (alen == (socklen_t)-1) return -1;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
  struct msghdr mh = {
      .msg_name = &a, .msg_namelen = alen, .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t r = ipc_sendmsg_fds(s, &mh, fds, nfds);
  int e = errno;
  close(s);
  if (r < 0) {
    errno = e;
    return -1;
  }
  if ((size_t)r != iov.iov_len) {
    errno = EMSGSIZE;
    return -1;
  }
  return 1;
}

int notify_ready(void) {
  return notify_send("READY=1", NULL, 0);
}

int notify_reloading(void) {
  return notify_send("RELOADING=1", NULL, 0);
}

int notify_stopping(void) {
  return notify_send("STOPPING=1", NULL, 0);
}

int notify_watchdog(void) {
  return notify_send("WATCHDOG=1", NULL, 0);
}

int notify_status(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = NULL;
  int n = vasprintf(&text, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  /* One line: a newline would start another variable. */
  for (char *p = text; *p; p++)
    if (*p == '\n') *p = ' ';
  char *msg = NULL;
  if (asprintf(&msg, "STATUS=%s", text) < 0) {
    free(text);
    return -1;
  }
  free(text);
  int r = notify_send(msg, NULL, 0);
  int e = errno;
  free(msg);
  errno = e;
  return r;
}

/* An unsigned decimal number and nothing else. */
static int parse_u64(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

/* 1 if $var holds our pid, 0 if another or malformed, -1 if unset. */
static int env_is_our_pid(const char *var) {
  const char *e = getenv(var);
  uint64_t pid;
  if (!e) return -1;
  return parse_u64(e, &pid) == 0 && pid == (uint64_t)getpid();
}

uint64_t notify_watchdog_interval_us(void) {
  uint64_t us;
  if (parse_u64(getenv("WATCHDOG_USEC"), &us) < 0 || us == 0) return 0;
  if (env_is_our_pid("WATCHDOG_PID") == 0) return 0;
  return us;
}

static int fdname_valid(const char *name) {
  if (!name || !*name || strlen(name) > FDNAME_MAX) return 0;
  for (const char *p = name; *p; p++)
    if (*p < ' ' || *p > '~' || *p == ':') return 0;
  return 1;
}

static int fdstore_message(const char *head, const char *name, const int *fds,
                           int n) {
  if (!fdname_valid(name)) {
    errno = EINVAL;
    return -1;
  }
  char msg[64 + FDNAME_MAX];
  snprintf(msg, sizeof msg, "%s\nFDNAME=%s", head, name);
  return notify_send(msg, fds, n);
}

int notify_fdstore(const int *fds, int n, const char *name) {
  if (n < 1) {
    errno = EINVAL;
    return -1;
  }
  return fdstore_message("FDSTORE=1", name, fds, n);
}

int notify_fdstore_remove(const char *name) {
  return fdstore_message("FDSTOREREMOVE=1", name, NULL, 0);
}

void listen_fds_free_names(char **names) {
  if (!names) return;
  for (char **p = names; *p; p++)
    free(*p);
  free(names);
}

/* Splits $LISTEN_FDNAMES (or n times "unknown") into a NULL-terminated
 * array of exactly n names.  Returns NULL with errno on a count mismatch. */
static char **split_names(const char *list, int n) {
  char **names = calloc((size_t)n + 1, sizeof *names);
  if (!names) return NULL;
  const char *p = list;
  for (int i = 0; i < n; i++) {
    const char *end = p ? strchr(p, ':') : NULL;
    size_t len = p ? (end ? (size_t)(end - p) : strlen(p)) : 0;
    names[i] = p ? strndup(p, len) : strdup("unknown");
    if (!names[i]) {
      listen_fds_free_names(names);
      return NULL;
    }
    if (p && !end && i + 1 < n) {
      listen_fds_free_names(names);
      errno = EINVAL; /* fewer names than descriptors */
      return NULL;
    }
    if (p) p = end ? end + 1 : NULL;
  }
  if (p) {
    listen_fds_free_names(names);
    errno = EINVAL; /* more names than descriptors */
    return NULL;
  }
  return names;
}

static int listen_fds_parse(char ***names) {
  int ours = env_is_our_pid("LISTEN_PID");
  if (ours <= 0) return 0;
  uint64_t n;
  if (parse_u64(getenv("LISTEN_FDS"), &n) < 0 ||
      n > (uint64_t)(INT_MAX - LISTEN_FDS_START)) {
    errno = EINVAL;
    return -1;
  }
  for (int fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + (int)n; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return -1;
  }
  if (names && n && !(*names = split_names(getenv("LISTEN_FDNAMES"), (int)n)))
    return -1;
  return (int)n;
}

int listen_fds_with_names(int unset_env, char ***names) {
  if (names) *names = NULL;
  int r = listen_fds_parse(names);
  int e = errno;
  if (unset_env) {
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
  }
  errno = e;
  return r;
}

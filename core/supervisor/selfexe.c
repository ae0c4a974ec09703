#include "selfexe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

extern char **environ;

#define CHECK_TIMEOUT_MS 5000

int selfexe_open(void) {
  return open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

int selfexe_exec(int fd, char *const *argv) {
  syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
  return -1;
}

/* The path /proc/self/exe names, without " (deleted)": where a package
 * upgrade puts the new binary. */
static int exe_path(char *path, size_t len) {
  ssize_t k = readlink("/proc/self/exe", path, len - 1);
  if (k <= 0) return -1;
  path[k] = 0;
  char *del = strstr(path, " (deleted)");
  if (del && !del[10]) *del = 0;
  return 0;
}

/* Reads the child's answer until it closes its output or the time is up. */
static size_t read_answer(int fd, char *buf, size_t len) {
  size_t got = 0;
  uint64_t end = clock_mono_ns() / 1000000 + CHECK_TIMEOUT_MS;
  while (got < len - 1) {
    uint64_t t = clock_mono_ns() / 1000000;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (t >= end || poll(&p, 1, (int)(end - t)) <= 0) break;
    ssize_t r = read(fd, buf + got, len - 1 - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  buf[got] = 0;
  return got;
}

/* Runs the binary in fd with --handover-version; its first output line. */
static int ask_version(int fd, char *ans, size_t len) {
  int pp[2];
  if (pipe2(pp, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(pp[1], 1);
    fcntl(fd, F_SETFD, 0); /* a script's interpreter opens it by /dev/fd */
    char *argv[] = {"uffdkit", "--handover-version", NULL};
    selfexe_exec(fd, argv);
    _exit(127);
  }
  close(pp[1]);
  if (pid < 0) {
    close(pp[0]);
    return -1;
  }
  read_answer(pp[0], ans, len);
  close(pp[0]);
  kill(pid, SIGKILL); /* a binary that hangs is not waited for */
  int st;
  waitpid(pid, &st, 0);
  ans[strcspn(ans, "\n")] = 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int selfexe_successor(char *path, size_t pathlen, char *why, size_t whylen) {
  if (exe_path(path, pathlen) < 0) {
    snprintf(why, whylen, "cannot tell which binary runs: %s", strerror(errno));
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  char ans[128] = "";
  const char *bad =
      !S_ISREG(st.st_mode)     ? "is not a regular file"
      : access(path, X_OK) < 0 ? "is not executable"
      : ask_version(fd, ans, sizeof ans) < 0 || strcmp(ans, HANDOVER_VERSION)
          ? "does not answer --handover-version with " HANDOVER_VERSION
          : NULL;
  if (bad) {
    snprintf(why, whylen, "%s %s%s%s%s", path, bad, *ans ? " (it said '" : "",
             ans, *ans ? "')" : "");
    close(fd);
    return -1;
  }
  return fd;
}

/* Peers the simulator cannot play, for the daemon's integration tests.
 *
 *   core-test-peer silent SOCKET MAX_S
 *     Connects and sends nothing; waits up to MAX_S seconds for the daemon
 *     to close the connection and prints "closed after S" (exit 0), or
 *     exits 1.
 *
 *   core-test-peer hangup SOCKET IMAGE HOLD_S
 *     A Firecracker 1.12 restore of IMAGE (one region, 4 KiB pages): sends
 *     the handshake, reads every page and compares it with IMAGE, then
 *     closes the socket while the process stays alive for HOLD_S seconds.
 *     Prints "verified N pages" then "hung up"; exit 1 on a mismatch, 2 on
 *     a setup error.
 *
 *   core-test-peer chatty SOCKET IMAGE HOLD_S
 *     The same, talking on the socket as unreleased Firecracker builds do:
 *     "no_exitless_apf" right after the JSON in the same sendmsg, and more
 *     bytes once half the pages were read.
 *
 *   core-test-peer forker SOCKET IMAGE FORKS HOLD_S
 *     The same restore with UFFD_FEATURE_EVENT_FORK and _UNMAP on,
 *     forking FORKS times first (each fork hands the page server a new
 *     userfaultfd; prints "forked N"), then, after reading the pages,
 *     unmapping them one at a time (an UNMAP event each; prints
 *     "unmapped N") before hanging up.
 *
 *   core-test-peer blocking SOCKET IMAGE
 *     Sends the handshake with a userfaultfd made without O_NONBLOCK;
 *     prints "closed" and exits 0 once the daemon closes the connection,
 *     exits 1 if it is still open after 10 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm.h"

#define PAGE 4096

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what) {
  fprintf(stderr, "core-test-peer: %s: %s\n", what, strerror(errno));
  return 2;
}

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  return fd;
}

static int silent(const char *path, double max) {
  int fd = connect_to(path);
  if (fd < 0) return die(path);
  double t0 = now();
  struct pollfd pf = {.fd = fd, .events = POLLIN | POLLRDHUP};
  while (now() - t0 < max) {
    if (poll(&pf, 1, 50) > 0) {
      char c;
      ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        printf("closed after %.3f\n", now() - t0);
        return 0;
      }
    }
  }
  fprintf(stderr, "core-test-peer: still open after %.1f s\n", max);
  return 1;
}

static int send_handshake(int sock, int uffd, const char *json) {
  return vmm_send_fd(sock, json, strlen(json), uffd);
}

struct how {
  int chatty;
  int blocking; /* uffd without O_NONBLOCK; wait for the refusal */
  int forks;    /* with fork events on */
};

static int forker(int n) {
  for (int i = 0; i < n; i++) {
    pid_t c = fork();
    if (c < 0) return die("fork");
    if (c == 0) _exit(0);
    waitpid(c, NULL, 0);
  }
  printf("forked %d\n", n);
  fflush(stdout);
  return 0;
}

static int restore(const char *path, const char *image, double hold,
                   struct how how) {
  int chatty = how.chatty;
  int img = open(image, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (img < 0 || fstat(img, &st) < 0) return die(image);
  size_t size = (size_t)st.st_size;
  if (!size || size % PAGE) {
    fprintf(stderr, "core-test-peer: %s: size must be whole pages\n", image);
    return 2;
  }
  int uffd = (int)syscall(SYS_userfaultfd,
                          O_CLOEXEC | (how.blocking ? 0 : O_NONBLOCK));
  if (uffd < 0) return die("userfaultfd");
  struct uffdio_api api = {
      .api = UFFD_API,
      .features =
          UFFD_FEATURE_EVENT_REMOVE |
          (how.forks ? UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_UNMAP : 0)};
  if (ioctl(uffd, UFFDIO_API, &api) < 0) return die("UFFDIO_API");
  char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return die("mmap");
  struct uffdio_register reg = {
      .range = {.start = (unsigned long)mem, .len = size},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) return die("UFFDIO_REGISTER");
  int sock = connect_to(path);
  if (sock < 0) return die(path);
  char json[256];
  snprintf(json, sizeof json,
           "[{\"base_host_virt_addr\":%lu,\"size\":%zu,\"offset\":0,"
           "\"page_size\":4096,\"page_size_kib\":4096}]%s",
           (unsigned long)mem, size, chatty ? "no_exitless_apf" : "");
  if (send_handshake(sock, uffd, json) < 0) return die("sendmsg");
  if (how.blocking) {
    struct pollfd pf = {.fd = sock, .events = POLLIN | POLLRDHUP};
    char c;
    if (poll(&pf, 1, 10000) > 0 && recv(sock, &c, 1, MSG_DONTWAIT) <= 0) {
      printf("closed\n");
      return 0;
    }
    fprintf(stderr, "core-test-peer: still open after 10 s\n");
    return 1;
  }
  if (how.forks && forker(how.forks)) return 2;
  char want[PAGE];
  for (size_t off = 0; off < size; off += PAGE) {
    if (chatty && off == size / 2 / PAGE * PAGE) {
      static const char more[] = "\x05\x00\x00\x00hello";
      if (send(sock, more, sizeof more - 1, MSG_NOSIGNAL) < 0)
        return die("sending more bytes");
    }
    if (pread(img, want, PAGE, (off_t)off) != PAGE)
      return die("reading the image");
    if (memcmp(mem + off, want, PAGE)) {
      fprintf(stderr, "core-test-peer: page at offset %zu differs\n", off);
      return 1;
    }
  }
  printf("verified %zu pages\n", size / PAGE);
  fflush(stdout);
  if (how.forks) {
    for (size_t off = 0; off < size; off += PAGE)
      if (munmap(mem + off, PAGE) < 0) return die("munmap");
    printf("unmapped %zu\n", size / PAGE);
    fflush(stdout);
  }
  close(sock);
  printf("hung up\n");
  fflush(stdout);
  usleep((useconds_t)(hold * 1e6));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "silent"))
    return silent(argv[2], atof(argv[3]));
  if (argc == 5 && !strcmp(argv[1], "hangup"))
    return restore(argv[2], argv[3], atof(argv[4]), (struct how){0});
  if (argc == 5 && !strcmp(argv[1], "chatty"))
    return restore(argv[2], argv[3], atof(argv[4]), (struct how){.chatty = 1});
  if (argc == 6 && !strcmp(argv[1], "forker"))
    return restore(argv[2], argv[3], atof(argv[5]),
                   (struct how){.forks = atoi(argv[4])});
  if (argc == 4 && !strcmp(argv[1], "blocking"))
    return restore(argv[2], argv[3], 0, (struct how){.blocking = 1});
  fprintf(stderr, "usage: core-test-peer silent SOCKET MAX_S\n"
                  "       core-test-peer hangup SOCKET IMAGE HOLD_S\n"
                  "       core-test-peer chatty SOCKET IMAGE HOLD_S\n"
                  "       core-test-peer forker SOCKET IMAGE FORKS HOLD_S\n"
                  "       core-test-peer blocking SOCKET IMAGE\n");
  return 2;
}

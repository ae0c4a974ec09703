/* strict-vmm: a VMM that checks each guest page the moment it is installed.
 *
 *   strict-vmm SOCKET IMAGE [VCPUS [TIMEOUT_S]]
 *
 * Guest memory (the size of IMAGE, 4 KiB pages) is registered with a
 * userfaultfd and handed to the page server with the handshake Firecracker
 * 1.12 sends (one region, the socket kept open).  Each vCPU thread touches
 * its pages in ascending order (vCPU k takes pages k, k+V, ...) and compares
 * every page with IMAGE right after its first touch returns.
 *
 * Everything is reported at once with write(2), so the report survives a
 * SIGKILL from the page server:
 *   MISMATCH offset=0x... byte=N got=0x.. want=0x..   a wrong page
 *   verified N                                        every 64 pages
 *   done pages=N mismatches=M                         the end of the run
 * Exit: 0 every page right, 1 mismatches, 2 setup error, 3 timeout (a vCPU
 * still waiting after TIMEOUT_S seconds, default 60). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_VCPUS 64
#define PROGRESS_EVERY 64

static uint8_t *mem, *expect;
static uint64_t npages;
static unsigned nvcpus = 1;
static atomic_uint_fast64_t verified, mismatches;
static atomic_uint finished_vcpus;

/* One line to stdout in a single write: nothing is buffered in-process. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(1, line, (size_t)n);
  (void)w;
}

__attribute__((noreturn, format(printf, 2, 3))) static void
die(int code, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "strict-vmm: %s\n", line);
  _exit(code);
}

static int open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
      close(dev);
    }
  }
  if (fd < 0) die(2, "cannot create a userfaultfd: %s", strerror(errno));
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_FEATURE_EVENT_REMOVE};
  if (ioctl(fd, UFFDIO_API, &api)) die(2, "UFFDIO_API: %s", strerror(errno));
  return fd;
}

static void load_image(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st))
    die(2, "cannot open %s: %s", path, strerror(errno));
  if (st.st_size <= 0 || st.st_size % PAGE)
    die(2, "%s: size %lld is not a positive multiple of 4096", path,
        (long long)st.st_size);
  npages = (uint64_t)st.st_size / PAGE;
  expect = malloc((size_t)st.st_size);
  if (!expect) die(2, "out of memory");
  for (off_t got = 0; got < st.st_size;) {
    ssize_t n = pread(fd, expect + got, (size_t)(st.st_size - got), got);
    if (n <= 0) die(2, "cannot read %s: %s", path, n ? strerror(errno) : "EOF");
    got += n;
  }
  close(fd);
}

static int handshake(const char *path, int uffd) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) die(2, "socket path too long");
  strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa))
    die(4, "cannot connect to %s: %s", path, strerror(errno));
  char json[256];
  int n = snprintf(json, sizeof json,
                   "[{\"base_host_virt_addr\":%" PRIuPTR ",\"size\":%" PRIu64
                   ",\"offset\":0,\"page_size\":%u,\"page_size_kib\":%u}]",
                   (uintptr_t)mem, npages * PAGE, PAGE, PAGE);
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = json, .iov_len = (size_t)n};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = ctl.buf,
                      .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &uffd, sizeof(int));
  if (sendmsg(s, &mh, MSG_NOSIGNAL) != n)
    die(4, "sending the handshake failed: %s", strerror(errno));
  return s;
}

static void check_page(uint64_t page) {
  const uint8_t *got = mem + page * PAGE, *want = expect + page * PAGE;
  if (!memcmp(got, want, PAGE)) {
    uint64_t v = atomic_fetch_add(&verified, 1) + 1;
    if (v % PROGRESS_EVERY == 0) say("verified %" PRIu64, v);
    return;
  }
  unsigned i = 0;
  while (got[i] == want[i])
    i++;
  atomic_fetch_add(&mismatches, 1);
  say("MISMATCH offset=0x%" PRIx64 " byte=%u got=0x%02x want=0x%02x",
      page * PAGE, i, got[i], want[i]);
}

static void *vcpu(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  for (uint64_t p = id; p < npages; p += nvcpus) {
    /* Fault somewhere inside the page, as a guest does. */
    (void)*(volatile const uint8_t *)(mem + p * PAGE + (p * 97) % PAGE);
    check_page(p);
  }
  atomic_fetch_add(&finished_vcpus, 1);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: strict-vmm SOCKET IMAGE [VCPUS [TIMEOUT_S]]\n");
    return 2;
  }
  double timeout = 60;
  if (argc > 3) nvcpus = (unsigned)atoi(argv[3]);
  if (argc > 4) timeout = atof(argv[4]);
  if (nvcpus < 1 || nvcpus > MAX_VCPUS || timeout <= 0)
    die(2, "bad VCPUS or TIMEOUT_S");
  load_image(argv[2]);
  mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die(2, "mmap: %s", strerror(errno));
  int uffd = open_uffd();
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)mem, .len = npages * PAGE},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg))
    die(2, "UFFDIO_REGISTER: %s", strerror(errno));
  int sock = handshake(argv[1], uffd);
  say("handshake sent, %" PRIu64 " pages, %u vCPUs", npages, nvcpus);

  pthread_t t[MAX_VCPUS];
  for (unsigned i = 0; i < nvcpus; i++)
    if (pthread_create(&t[i], NULL, vcpu, (void *)(uintptr_t)i))
      die(2, "cannot start vCPU %u", i);
  /* A vCPU blocked in a fault cannot be joined with a deadline: poll. */
  struct timespec tick = {0, 20 * 1000 * 1000};
  for (double waited = 0; atomic_load(&finished_vcpus) < nvcpus;
       waited += 0.02) {
    if (waited >= timeout) {
      say("timeout after %.1f s: %" PRIu64 " pages verified", timeout,
          (uint64_t)atomic_load(&verified));
      _exit(3);
    }
    nanosleep(&tick, NULL);
  }
  for (unsigned i = 0; i < nvcpus; i++)
    pthread_join(t[i], NULL);
  uint64_t bad = atomic_load(&mismatches);
  say("done pages=%" PRIu64 " mismatches=%" PRIu64, npages, bad);
  close(sock);
  return bad ? 1 : 0;
}

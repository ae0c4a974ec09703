/* sigbus-vmm: a VMM that survives SIGBUS on guest memory and says where.
 *
 *   trust-sigbus-vmm SOCKET IMAGE [TIMEOUT_S]
 *
 * Guest memory (the size of IMAGE, 4 KiB pages, one region) is registered
 * with a userfaultfd and handed to the page server with the handshake
 * Firecracker 1.12 sends (the socket kept open).  One vCPU thread touches
 * every page in ascending order and compares it with IMAGE right after its
 * first touch returns.
 *
 * A SIGBUS on guest memory (a page the server poisoned) is caught on the
 * thread that touched it; the vCPU stops there, the process waits 300 ms
 * (so a SIGKILL the server might also send would land) and exits 5.
 *
 * Everything is reported at once with write(2), so the report survives a
 * SIGKILL from the page server:
 *   handshake sent, N pages
 *   MISMATCH offset=0x... byte=N got=0x.. want=0x..   a wrong page
 *   verified N                                        every 64 pages
 *   sigbus offset=0x... code=N vcpu_thread=yes|no     the SIGBUS
 *   done pages=N mismatches=M                         the end of the run
 * Exit: 0 every page right, 1 mismatches, 2 setup error, 3 timeout,
 * 5 SIGBUS on guest memory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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
#define PROGRESS_EVERY 64

static uint8_t *mem, *expect;
static uint64_t npages;
static atomic_uint_fast64_t verified, mismatches;
static atomic_int finished, got_sigbus;
static pid_t vcpu_tid;
static sigjmp_buf vcpu_jmp;

/* One line to stdout in a single write: nothing is buffered in-process,
 * and it is safe in a signal handler. */
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
  fprintf(stderr, "trust-sigbus-vmm: %s\n", line);
  _exit(code);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  uintptr_t a = (uintptr_t)si->si_addr, base = (uintptr_t)mem;
  if (a < base || a >= base + npages * PAGE) {
    /* Not guest memory: a real crash of this program. */
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
    return;
  }
  int on_vcpu = (pid_t)syscall(SYS_gettid) == vcpu_tid;
  say("sigbus offset=0x%" PRIxPTR " code=%d vcpu_thread=%s",
      (a - base) & ~(uintptr_t)(PAGE - 1), si->si_code, on_vcpu ? "yes" : "no");
  atomic_store(&got_sigbus, 1);
  if (on_vcpu) siglongjmp(vcpu_jmp, 1);
  _exit(5);
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
  (void)arg;
  vcpu_tid = (pid_t)syscall(SYS_gettid);
  if (sigsetjmp(vcpu_jmp, 1) == 0) {
    for (uint64_t p = 0; p < npages; p++) {
      /* Fault somewhere inside the page, as a guest does. */
      (void)*(volatile const uint8_t *)(mem + p * PAGE + (p * 97) % PAGE);
      check_page(p);
    }
  }
  atomic_store(&finished, 1);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: trust-sigbus-vmm SOCKET IMAGE [TIMEOUT_S]\n");
    return 2;
  }
  double timeout = argc > 3 ? atof(argv[3]) : 60;
  if (timeout <= 0) die(2, "bad TIMEOUT_S");
  load_image(argv[2]);
  mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die(2, "mmap: %s", strerror(errno));
  struct sigaction sa = {.sa_sigaction = on_sigbus,
                         .sa_flags = SA_SIGINFO | SA_NODEFER};
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, NULL)) die(2, "sigaction: %s", strerror(errno));
  int uffd = open_uffd();
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)mem, .len = npages * PAGE},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg))
    die(2, "UFFDIO_REGISTER: %s", strerror(errno));
  int sock = handshake(argv[1], uffd);
  say("handshake sent, %" PRIu64 " pages", npages);

  pthread_t t;
  if (pthread_create(&t, NULL, vcpu, NULL)) die(2, "cannot start the vCPU");
  /* A vCPU blocked in a fault cannot be joined with a deadline: poll. */
  struct timespec tick = {0, 20 * 1000 * 1000};
  for (double waited = 0; !atomic_load(&finished); waited += 0.02) {
    if (waited >= timeout) {
      say("timeout after %.1f s: %" PRIu64 " pages verified", timeout,
          (uint64_t)atomic_load(&verified));
      _exit(3);
    }
    nanosleep(&tick, NULL);
  }
  pthread_join(t, NULL);
  if (atomic_load(&got_sigbus)) {
    struct timespec linger = {0, 300 * 1000 * 1000};
    nanosleep(&linger, NULL);
    say("alive after sigbus, %" PRIu64 " pages verified",
        (uint64_t)atomic_load(&verified));
    close(sock);
    return 5;
  }
  uint64_t bad = atomic_load(&mismatches);
  say("done pages=%" PRIu64 " mismatches=%" PRIu64, npages, bad);
  close(sock);
  return bad ? 1 : 0;
}

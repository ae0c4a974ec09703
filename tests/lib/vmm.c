/* The VMM side of a Firecracker restore for test programs (see vmm.h). */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define PAGE VMM_PAGE
#define PROGRESS_EVERY 64

const char *vmm_name = "vmm";
unsigned vmm_delay_us;

static uint8_t *mem, *expect;
static uint64_t npages;
static atomic_uint_fast64_t verified, mismatches;
static atomic_uint finished_vcpus;
static void (*vcpu_fn)(unsigned id);

/* A single write, nothing buffered in-process: the line is out before any
 * SIGKILL can land. */
void vmm_say(const char *fmt, ...) {
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

void vmm_die(int code, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s\n", vmm_name, line);
  _exit(code);
}

static int open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    /* Kernels with vm.unprivileged_userfaultfd = 0 still allow the device. */
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
      close(dev);
    }
  }
  if (fd < 0) vmm_die(2, "cannot create a userfaultfd: %s", strerror(errno));
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_FEATURE_EVENT_REMOVE};
  if (ioctl(fd, UFFDIO_API, &api))
    vmm_die(2, "UFFDIO_API: %s", strerror(errno));
  return fd;
}

static void load_image(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st))
    vmm_die(2, "cannot open %s: %s", path, strerror(errno));
  if (st.st_size <= 0 || st.st_size % PAGE)
    vmm_die(2, "%s: size %lld is not a positive multiple of 4096", path,
            (long long)st.st_size);
  npages = (uint64_t)st.st_size / PAGE;
  expect = malloc((size_t)st.st_size);
  if (!expect) vmm_die(2, "out of memory");
  for (off_t got = 0; got < st.st_size;) {
    ssize_t n = pread(fd, expect + got, (size_t)(st.st_size - got), got);
    if (n <= 0)
      vmm_die(2, "cannot read %s: %s", path, n ? strerror(errno) : "EOF");
    got += n;
  }
  close(fd);
}

static int map_guest(void) {
  mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) vmm_die(2, "mmap: %s", strerror(errno));
  int uffd = open_uffd();
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)mem, .len = npages * PAGE},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg))
    vmm_die(2, "UFFDIO_REGISTER: %s", strerror(errno));
  return uffd;
}

static int connect_to(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) vmm_die(2, "socket path too long");
  strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa))
    vmm_die(4, "cannot connect to %s: %s", path, strerror(errno));
  return s;
}

static void send_handshake(int s, int uffd) {
  char json[256];
  int n = snprintf(json, sizeof json,
                   "[{\"base_host_virt_addr\":%" PRIuPTR ",\"size\":%" PRIu64
                   ",\"offset\":0,\"page_size\":%u,\"page_size_kib\":%u}]",
                   (uintptr_t)mem, npages * PAGE, PAGE, PAGE);
  if (vmm_send_fd(s, json, (size_t)n, uffd) < 0)
    vmm_die(4, "sending the handshake failed: %s", strerror(errno));
}

int vmm_send_fd(int sock, const void *buf, size_t len, int fd) {
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = ctl.buf,
                      .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int vmm_start(const char *socket_path, const char *image_path) {
  load_image(image_path);
  int uffd = map_guest();
  int s = connect_to(socket_path);
  send_handshake(s, uffd);
  return s;
}

uint64_t vmm_pages(void) {
  return npages;
}

uint64_t vmm_verified(void) {
  return (uint64_t)atomic_load(&verified);
}

int vmm_guest_page(uintptr_t addr, uintptr_t *offset) {
  uintptr_t base = (uintptr_t)mem;
  if (addr < base || addr >= base + npages * PAGE) return 0;
  *offset = (addr - base) & ~(uintptr_t)(PAGE - 1);
  return 1;
}

static void check_page(uint64_t page) {
  const uint8_t *got = mem + page * PAGE, *want = expect + page * PAGE;
  if (!memcmp(got, want, PAGE)) {
    uint64_t v = atomic_fetch_add(&verified, 1) + 1;
    if (v % PROGRESS_EVERY == 0) vmm_say("verified %" PRIu64, v);
    return;
  }
  unsigned i = 0;
  while (got[i] == want[i])
    i++;
  atomic_fetch_add(&mismatches, 1);
  vmm_say("MISMATCH offset=0x%" PRIx64 " byte=%u got=0x%02x want=0x%02x",
          page * PAGE, i, got[i], want[i]);
}

void vmm_touch(unsigned first, unsigned stride) {
  for (uint64_t p = first; p < npages; p += stride) {
    /* Fault somewhere inside the page, as a guest does. */
    (void)*(volatile const uint8_t *)(mem + p * PAGE + (p * 97) % PAGE);
    check_page(p);
    if (vmm_delay_us) usleep(vmm_delay_us);
  }
}

static void *vcpu_thread(void *arg) {
  vcpu_fn((unsigned)(uintptr_t)arg);
  atomic_fetch_add(&finished_vcpus, 1);
  return NULL;
}

/* A vCPU blocked in a fault cannot be joined with a deadline: poll. */
static void wait_vcpus(unsigned nvcpus, double timeout_s) {
  struct timespec tick = {0, 20 * 1000 * 1000};
  for (double waited = 0; atomic_load(&finished_vcpus) < nvcpus;
       waited += 0.02) {
    if (waited >= timeout_s) {
      vmm_say("timeout after %.1f s: %" PRIu64 " pages verified", timeout_s,
              vmm_verified());
      _exit(3);
    }
    nanosleep(&tick, NULL);
  }
}

void vmm_run(unsigned nvcpus, void (*vcpu)(unsigned id), double timeout_s) {
  pthread_t t[VMM_MAX_VCPUS];
  if (nvcpus < 1 || nvcpus > VMM_MAX_VCPUS) vmm_die(2, "bad vCPU count");
  vcpu_fn = vcpu;
  for (unsigned i = 0; i < nvcpus; i++)
    if (pthread_create(&t[i], NULL, vcpu_thread, (void *)(uintptr_t)i))
      vmm_die(2, "cannot start vCPU %u", i);
  wait_vcpus(nvcpus, timeout_s);
  for (unsigned i = 0; i < nvcpus; i++)
    pthread_join(t[i], NULL);
}

int vmm_done(int sock) {
  uint64_t bad = (uint64_t)atomic_load(&mismatches);
  vmm_say("done pages=%" PRIu64 " mismatches=%" PRIu64, npages, bad);
  close(sock);
  return bad ? 1 : 0;
}

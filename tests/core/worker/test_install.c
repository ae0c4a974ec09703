/* Installing a page that another path installed first (EEXIST) must wake
 * the vCPU waiting on it.  The working-set replay and the background fill
 * install with DONTWAKE and wake later, in batches; a vCPU whose fault the
 * fault loop or the pool serves meanwhile gets EEXIST from the kernel and
 * is woken only by that install, or by whatever wakes the page next.
 *
 * Here a thread plays the vCPU: it touches a page of a userfaultfd range
 * and blocks; the test reads its fault, installs the page with DONTWAKE (the
 * other path), then calls install_copy / install_zero on
 * it.  Nothing else will ever wake the thread, so it finishes (within a
 * generous bound) only if that call woke it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "checkrun.h"
#include "install.h"
#include "session.h"
#include "shm.h"

#define PS 4096u
#define PAGES 4u
#define WAKE_BOUND_S 10 /* a woken thread finishes in microseconds */

struct fixture {
  struct session s;
  uint8_t *mem;
  uint8_t src[PS];
  volatile uint8_t seen;
  int done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static int open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  ck_assert_msg(fd >= 0, "userfaultfd: %s", strerror(errno));
  struct uffdio_api api = {.api = UFFD_API};
  ck_assert_msg(!ioctl(fd, UFFDIO_API, &api), "UFFDIO_API: %s",
                strerror(errno));
  return fd;
}

static void setup(struct fixture *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->cond, NULL);
  f->mem = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(f->mem != MAP_FAILED);
  struct session *s = &f->s;
  s->uffd = open_uffd();
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)f->mem, .len = PAGES * PS},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  ck_assert_msg(!ioctl(s->uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER: %s",
                strerror(errno));
  s->ps = PS;
  s->ps_shift = 12;
  s->info.nregions = 1;
  s->regions[0] = (struct ufk_region){
      .base = (uintptr_t)f->mem, .size = PAGES * PS, .offset = 0};
  s->shm = calloc(1, sizeof *s->shm);
  s->present = calloc(1, sizeof(uint64_t));
  s->removed = calloc(1, sizeof(uint64_t));
  s->inflight = calloc(1, sizeof(uint64_t));
  ck_assert(s->shm && s->present && s->removed && s->inflight);
  pthread_rwlock_init(&s->rmlock, NULL);
  for (unsigned i = 0; i < PS; i++)
    f->src[i] = (uint8_t)(i * 7 + 1);
}

/* Lets the vCPU go whatever happened (it faults again if the page is
 * still missing: hence the copy), then releases everything. */
static void teardown(struct fixture *f, pthread_t t) {
  struct session *s = &f->s;
  struct uffdio_copy c = {
      .dst = (uintptr_t)f->mem + PS, .src = (uintptr_t)f->src, .len = PS};
  ioctl(s->uffd, UFFDIO_COPY, &c);
  struct uffdio_range all = {.start = (uintptr_t)f->mem, .len = PAGES * PS};
  ioctl(s->uffd, UFFDIO_WAKE, &all);
  pthread_join(t, NULL);
  close(s->uffd);
  munmap(f->mem, PAGES * PS);
  free(s->shm);
  free(s->present);
  free(s->removed);
  free(s->inflight);
}

static void *vcpu(void *arg) {
  struct fixture *f = arg;
  f->seen = *(volatile uint8_t *)(f->mem + PS + 5); /* page 1 */
  pthread_mutex_lock(&f->lock);
  f->done = 1;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

/* Waits for the vCPU's fault message: it is blocked on the page now. */
static void await_fault(struct fixture *f) {
  struct pollfd p = {.fd = f->s.uffd, .events = POLLIN};
  ck_assert_msg(poll(&p, 1, WAKE_BOUND_S * 1000) == 1, "no fault arrived");
  struct uffd_msg m;
  ck_assert(read(f->s.uffd, &m, sizeof m) == (ssize_t)sizeof m);
  ck_assert_int_eq(m.event, UFFD_EVENT_PAGEFAULT);
  ck_assert(m.arg.pagefault.address >> 12 == ((uintptr_t)f->mem + PS) >> 12);
}

/* The other path: installs page 1 and wakes nobody. */
static void install_dontwake(struct fixture *f, int zero) {
  uint64_t dst = (uintptr_t)f->mem + PS;
  int rc;
  if (zero) {
    struct uffdio_zeropage z = {.range = {.start = dst, .len = PS},
                                .mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE};
    rc = ioctl(f->s.uffd, UFFDIO_ZEROPAGE, &z);
  } else {
    struct uffdio_copy c = {.dst = dst,
                            .src = (uintptr_t)f->src,
                            .len = PS,
                            .mode = UFFDIO_COPY_MODE_DONTWAKE};
    rc = ioctl(f->s.uffd, UFFDIO_COPY, &c);
  }
  ck_assert_msg(!rc, "the DONTWAKE install failed: %s", strerror(errno));
}

static int woken(struct fixture *f) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAKE_BOUND_S;
  pthread_mutex_lock(&f->lock);
  int r = 0;
  while (!f->done && r == 0)
    r = pthread_cond_timedwait(&f->cond, &f->lock, &until);
  int done = f->done;
  pthread_mutex_unlock(&f->lock);
  return done;
}

static void run(int zero_first, int zero_then) {
  static struct fixture f;
  setup(&f);
  pthread_t t;
  ck_assert(!pthread_create(&t, NULL, vcpu, &f));
  await_fault(&f);
  install_dontwake(&f, zero_first);
  uint64_t dst = (uintptr_t)f.mem + PS;
  enum install_result r = zero_then ? install_zero(&f.s, dst, PS)
                                    : install_copy(&f.s, dst, f.src, PS);
  ck_assert_int_eq(r, INSTALL_DONE);
  int ok = woken(&f);
  int present = f.s.present[0] >> 1 & 1;
  teardown(&f, t);
  ck_assert_msg(ok,
                "the vCPU was not woken by the install that met EEXIST "
                "(still blocked after %d s)",
                WAKE_BOUND_S);
  ck_assert_int_eq(f.seen, zero_first ? 0 : f.src[5]);
  ck_assert_msg(present, "page 1 not marked present");
}

START_TEST(copy_after_copy) {
  run(0, 0);
}
END_TEST

START_TEST(zero_after_copy) {
  run(0, 1);
}
END_TEST

START_TEST(copy_after_zero) {
  run(1, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("install");
  TCase *t = tcase_create("eexist_wakes");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, copy_after_copy);
  tcase_add_test(t, zero_after_copy);
  tcase_add_test(t, copy_after_zero);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

/* The I/O pool (core/worker/pool.c): pages submitted to it are read from a
 * real source stack (the file plugin over a file of known bytes) and
 * installed into a userfaultfd range by its threads, as the fault loop
 * hands them over.  Every byte is checked, and so is the session state the
 * pool must leave behind: present bits set, in-flight bits cleared, no
 * job and no reference left. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "checkrun.h"
#include "config.h"
#include "conftext.h"
#include "host.h"
#include "hosttext.h"
#include "pool.h"
#include "session.h"
#include "shm.h"
#include "stack.h"

#ifndef PLUGIN_DIR
#error "PLUGIN_DIR must name the directory of the built plugins"
#endif

#define PS 4096u
/* More than the pool's queue holds (4096): the submitter must wait for
 * room, never drop or deadlock. */
#define PAGES 4608u

struct fixture {
  char dir[64], path[96];
  struct daemon_conf conf;
  struct worker_listener wl;
  struct session s;
  struct session_shm shm;
  uint8_t *mem;
};

static struct fixture F;

static uint8_t byte_at(uint64_t off) {
  return (uint8_t)(off * 13 + off / PS);
}

static void write_source(const char *path, uint64_t len) {
  FILE *f = fopen(path, "w");
  ck_assert_msg(f, "%s: %s", path, strerror(errno));
  for (uint64_t o = 0; o < len; o++)
    fputc(byte_at(o), f);
  ck_assert(fclose(f) == 0);
}

static void build_stack(const char *policy) {
  char text[1024], err[2048];
  snprintf(text, sizeof text,
           "listeners = ( { name = \"p\"; socket = \"%s/p.sock\";\n"
           "  on_source_error = \"%s\";\n"
           "  source = { plugin = \"file\"; path = \"%s\"; }; } );\n",
           F.dir, policy, F.path);
  ck_assert_msg(
      !conf_load_string_t(&F.conf, text, "pool.conf", err, sizeof err), "%s",
      err);
  F.wl.conf = &F.conf.listeners[0];
  F.wl.stack = stack_build_t(host_table(), &F.conf, F.wl.conf, PLUGIN_DIR, NULL,
                             err, sizeof err);
  ck_assert_msg(F.wl.stack, "stack: %s", err);
}

/* A session over PAGES missing pages whose source is F.path (of src_len
 * bytes), under on_source_error = policy. */
static void setup(uint64_t src_len, const char *policy) {
  memset(&F, 0, sizeof F);
  snprintf(F.dir, sizeof F.dir, "/tmp/uffdkit-pool.XXXXXX");
  ck_assert(mkdtemp(F.dir));
  snprintf(F.path, sizeof F.path, "%s/mem", F.dir);
  write_source(F.path, src_len);
  build_stack(policy);
  struct session *s = &F.s;
  s->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  ck_assert_msg(s->uffd >= 0, "userfaultfd: %s", strerror(errno));
  struct uffdio_api api = {.api = UFFD_API};
  ck_assert(!ioctl(s->uffd, UFFDIO_API, &api));
  F.mem = mmap(NULL, (size_t)PAGES * PS, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(F.mem != MAP_FAILED);
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)F.mem, .len = (uint64_t)PAGES * PS},
      .mode = UFFDIO_REGISTER_MODE_MISSING};
  ck_assert_msg(!ioctl(s->uffd, UFFDIO_REGISTER, &reg), "register: %s",
                strerror(errno));
  s->id = 7;
  s->wl = &F.wl;
  s->shm = &F.shm;
  s->pidfd = -1;
  s->ps = PS;
  s->ps_shift = 12;
  s->info.nregions = 1;
  s->info.pid = 0; /* nobody to signal */
  s->regions[0] = (struct ufk_region){
      .base = (uintptr_t)F.mem, .size = (uint64_t)PAGES * PS, .offset = 0};
  s->info.regions = s->regions;
  s->present = calloc(bitmap_words(PAGES), sizeof(uint64_t));
  s->removed = calloc(bitmap_words(PAGES), sizeof(uint64_t));
  s->inflight = calloc(bitmap_words(PAGES), sizeof(uint64_t));
  ck_assert(s->present && s->removed && s->inflight);
  pthread_rwlock_init(&s->rmlock, NULL);
  pthread_mutex_init(&s->ref_lock, NULL);
  pthread_cond_init(&s->ref_cond, NULL);
}

static void teardown(void) {
  struct session *s = &F.s;
  close(s->uffd);
  munmap(F.mem, (size_t)PAGES * PS);
  free(s->present);
  free(s->removed);
  free(s->inflight);
  stack_destroy(F.wl.stack);
  conf_free(&F.conf);
  unlink(F.path);
  rmdir(F.dir);
}

/* Queues pages [first, first + n) as the fault loop does: in flight first. */
static void submit(struct pool *p, uint64_t first, uint64_t n) {
  for (uint64_t i = first; i < first + n; i++) {
    bitmap_set(F.s.inflight, i, 1);
    pool_submit(p, &F.s, (uintptr_t)F.mem + i * PS, i * PS, i, PS);
  }
}

/* Waits for every job, then checks what the pool must leave behind. */
static void drain(struct pool *p) {
  session_unheld(&F.s);
  pool_free(p);
  ck_assert_int_eq(F.s.refs, 0);
  ck_assert_int_eq(F.s.pool_jobs, 0);
  for (uint64_t i = 0; i < PAGES; i++)
    ck_assert_msg(!bitmap_test(F.s.inflight, i),
                  "page %llu still marked in flight", (unsigned long long)i);
}

START_TEST(installs_every_byte) {
  setup((uint64_t)PAGES * PS, "hang");
  struct pool *p = pool_new("p", 3);
  ck_assert_int_eq(pool_threads(p), 0); /* none before there is work */
  submit(p, 0, PAGES);
  ck_assert_int_ge(pool_threads(p), 1);
  ck_assert_int_le(pool_threads(p), 3);
  drain(p);
  for (uint64_t o = 0; o < (uint64_t)PAGES * PS; o++)
    if (F.mem[o] != byte_at(o))
      ck_abort_msg("byte %llu is %u, the source has %u", (unsigned long long)o,
                   F.mem[o], byte_at(o));
  for (uint64_t i = 0; i < PAGES; i++)
    ck_assert_msg(bitmap_test(F.s.present, i), "page %llu not marked present",
                  (unsigned long long)i);
  ck_assert_uint_eq(F.shm.counters.pages_copied, PAGES);
  ck_assert_uint_eq(F.shm.counters.bytes_copied, (uint64_t)PAGES * PS);
  teardown();
}
END_TEST

/* A page the guest discarded (REMOVE) while its job waited must read as
 * zeros, never as the source's bytes. */
START_TEST(removed_page_reads_zero) {
  setup((uint64_t)PAGES * PS, "hang");
  bitmap_set(F.s.removed, 5, 1);
  struct pool *p = pool_new("p", 1);
  submit(p, 4, 3);
  drain(p);
  for (uint64_t o = 5 * PS; o < 6 * PS; o++)
    ck_assert_msg(F.mem[o] == 0, "removed page: byte %llu is %u",
                  (unsigned long long)o, F.mem[o]);
  ck_assert_uint_eq(F.mem[4 * PS + 1], byte_at(4 * PS + 1));
  ck_assert_uint_eq(F.mem[6 * PS + 1], byte_at(6 * PS + 1));
  ck_assert_uint_eq(F.shm.counters.zero_pages, 1);
  ck_assert_uint_eq(F.shm.counters.pages_copied, 2);
  teardown();
}
END_TEST

/* A page the source cannot deliver is never installed: on_source_error
 * (hang here) applies and the error is counted. */
START_TEST(source_error_installs_nothing) {
  setup(8 * PS, "hang"); /* the file ends at page 8 */
  struct pool *p = pool_new("p", 2);
  submit(p, 6, 4);
  drain(p);
  ck_assert_msg(bitmap_test(F.s.present, 6) && bitmap_test(F.s.present, 7),
                "the pages the source has were not installed");
  ck_assert_msg(!bitmap_test(F.s.present, 8) && !bitmap_test(F.s.present, 9),
                "a page past the source's end was marked present");
  ck_assert_uint_eq(F.shm.counters.source_errors, 2);
  ck_assert_uint_eq(F.shm.counters.pages_copied, 2);
  teardown();
}
END_TEST

/* Jobs of a session whose fault loop has left give up, but still clear
 * their in-flight bit and drop their reference, or the session would
 * never be freed. */
START_TEST(ending_session_gives_up) {
  setup((uint64_t)PAGES * PS, "hang");
  F.s.ending = 1;
  struct pool *p = pool_new("p", 2);
  submit(p, 0, 64);
  drain(p);
  for (uint64_t i = 0; i < 64; i++)
    ck_assert_msg(!bitmap_test(F.s.present, i),
                  "page %llu installed for an ending session",
                  (unsigned long long)i);
  ck_assert_uint_eq(F.shm.counters.pages_copied, 0);
  teardown();
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-worker-pool");
  const struct ufk_check_case cases[] = {
      {"installs_every_byte", installs_every_byte},
      {"removed_page_reads_zero", removed_page_reads_zero},
      {"source_error_installs_nothing", source_error_installs_nothing},
      {"ending_session_gives_up", ending_session_gives_up},
  };
  ufk_check_cases(s, cases, sizeof cases / sizeof *cases, NULL, NULL, 60);
  return ufk_check_run(s);
}

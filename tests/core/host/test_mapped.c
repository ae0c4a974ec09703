/* Copies out of a file mapping that shrinks under it (core/host/mapped.c,
 * the host service copy_mapped). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkrun.h"
#include "mapped.h"

#define PAGE 4096
#define PAGES 4

static char path[] = "/tmp/uffdkit-mapped.XXXXXX";
static int fd = -1;
static uint8_t *map;

static uint8_t byte_at(size_t off) {
  return (uint8_t)(off * 7 + off / PAGE);
}

static void setup(void) {
  strcpy(path, "/tmp/uffdkit-mapped.XXXXXX");
  fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  uint8_t buf[PAGES * PAGE];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = byte_at(i);
  ck_assert_int_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
  map = mmap(NULL, PAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
  ck_assert_ptr_ne(map, MAP_FAILED);
}

static void teardown(void) {
  munmap(map, PAGES * PAGE);
  close(fd);
  unlink(path);
}

static void assert_copied(const uint8_t *got, size_t off, size_t len) {
  for (size_t i = 0; i < len; i++)
    ck_assert_uint_eq(got[i], byte_at(off + i));
}

START_TEST(copies_what_is_there) {
  uint8_t out[2 * PAGE];
  ck_assert_int_eq(host_copy_mapped(out, map + 100, sizeof out), 0);
  assert_copied(out, 100, sizeof out);
}
END_TEST

/* Bytes past the new end fail with EIO, again and again (the signal is
 * not left blocked), while bytes before it are still copied. */
START_TEST(truncated_is_an_error) {
  ck_assert_int_eq(ftruncate(fd, PAGE), 0);
  uint8_t out[2 * PAGE];
  for (int round = 0; round < 3; round++) {
    errno = 0;
    ck_assert_int_eq(host_copy_mapped(out, map + 2 * PAGE, PAGE), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(host_copy_mapped(out, map + PAGE / 2, PAGE), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(host_copy_mapped(out, map + 8, PAGE - 8), 0);
    assert_copied(out, 8, PAGE - 8);
  }
}
END_TEST

/* A SIGBUS outside a copy is not swallowed: it goes to the handler there
 * before (here the default, not a sanitizer's), and the process dies. */
START_TEST(other_sigbus_kills) {
  uint8_t out[PAGE];
  signal(SIGBUS, SIG_DFL);
  ck_assert_int_eq(host_copy_mapped(out, map, PAGE), 0); /* installed */
  ck_assert_int_eq(ftruncate(fd, PAGE), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    volatile uint8_t v = map[3 * PAGE]; /* past the end, unguarded */
    (void)v;
    _exit(0);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFSIGNALED(st));
  ck_assert_int_eq(WTERMSIG(st), SIGBUS);
}
END_TEST

struct reader {
  size_t off;
  int fails, rounds;
};

static void *read_loop(void *arg) {
  struct reader *r = arg;
  uint8_t out[PAGE];
  for (int i = 0; i < r->rounds; i++) {
    int rc = host_copy_mapped(out, map + r->off, PAGE);
    if (rc < 0) {
      r->fails++;
    } else {
      for (size_t j = 0; j < PAGE; j++)
        if (out[j] != byte_at(r->off + j)) return (void *)1;
    }
  }
  return NULL;
}

/* A failed copy on one thread leaves another thread's copies alone. */
START_TEST(threads_apart) {
  ck_assert_int_eq(ftruncate(fd, 2 * PAGE), 0);
  struct reader in = {.off = PAGE, .rounds = 2000};
  struct reader past = {.off = 3 * PAGE, .rounds = 2000};
  pthread_t a, b;
  ck_assert_int_eq(pthread_create(&a, NULL, read_loop, &in), 0);
  ck_assert_int_eq(pthread_create(&b, NULL, read_loop, &past), 0);
  void *ra, *rb;
  pthread_join(a, &ra);
  pthread_join(b, &rb);
  ck_assert_ptr_null(ra);
  ck_assert_ptr_null(rb);
  ck_assert_int_eq(in.fails, 0);
  ck_assert_int_eq(past.fails, 2000);
}
END_TEST

int main(void) {
  Suite *s = suite_create("mapped");
  const struct ufk_check_case cases[] = {
      {"copies_what_is_there", copies_what_is_there},
      {"truncated_is_an_error", truncated_is_an_error},
      {"other_sigbus_kills", other_sigbus_kills},
      {"threads_apart", threads_apart}};
  ufk_check_cases(s, cases, sizeof cases / sizeof *cases, setup, teardown, 0);
  return ufk_check_run(s);
}

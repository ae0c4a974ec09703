/* A generation's pinned data files, and the record a shared stack is
 * checked by (core/host/pinned.c). */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkrun.h"
#include "ipc.h"
#include "pinned.h"

static char dir[] = "/tmp/uffdkit-pinned.XXXXXX";
static char path[PATH_MAX], other[PATH_MAX];
static struct pinset *set; /* the thread's scope in every test */

static void put(const char *p, const char *text) {
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* path now names a new file holding text (the old one replaced by
 * rename). */
static void replace(const char *text) {
  put(other, text);
  ck_assert_int_eq(rename(other, path), 0);
}

static char first(int fd) {
  char c = 0;
  ck_assert_int_eq(pread(fd, &c, 1, 0), 1);
  return c;
}

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/served", dir);
  snprintf(other, sizeof other, "%s/x", dir);
  put(path, "A");
  set = pinset_new(1, -1);
  ck_assert_ptr_nonnull(set);
  pinned_scope(set, NULL);
}

static void teardown(void) {
  pinned_scope(NULL, NULL);
  pinset_free(set);
  unlink(path);
  unlink(other);
  rmdir(dir);
  strcpy(dir, "/tmp/uffdkit-pinned.XXXXXX");
}

START_TEST(rename_keeps_inode) {
  int a = pinned_open(path, O_RDONLY);
  ck_assert_int_ge(a, 0);
  ck_assert_int_ne(fcntl(a, F_GETFD) & FD_CLOEXEC, 0);
  replace("B");
  int again = pinned_open(path, O_RDONLY | O_CLOEXEC); /* same key */
  ck_assert_int_eq(first(again), 'A');
  struct stat s1, s2;
  fstat(a, &s1);
  fstat(again, &s2);
  ck_assert(s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev);
  int other_flags = pinned_open(path, O_RDONLY | O_NONBLOCK);
  ck_assert_int_eq(first(other_flags), 'B'); /* another key: opened */
  close(a);
  close(again);
  close(other_flags);
}
END_TEST

START_TEST(writable_not_pinned) {
  int w = pinned_open(path, O_RDWR);
  ck_assert_int_ge(w, 0);
  replace("B");
  int w2 = pinned_open(path, O_RDWR);
  ck_assert_int_eq(first(w2), 'B');
  close(w);
  close(w2);
}
END_TEST

START_TEST(missing_file) {
  char p[PATH_MAX + 8];
  snprintf(p, sizeof p, "%s/none", dir);
  ck_assert_int_eq(pinned_open(p, O_RDONLY), -1);
}
END_TEST

START_TEST(adopted_from_earlier_worker) {
  int a = open(path, O_RDONLY | O_CLOEXEC);
  int meta = pinned_meta(path, O_RDONLY);
  ck_assert_int_ge(meta, 0);
  char got[PATH_MAX];
  int flags = -1;
  ck_assert_int_eq(pinned_meta_read(meta, got, sizeof got, &flags), 0);
  ck_assert_str_eq(got, path);
  ck_assert_int_eq(flags, O_RDONLY);
  replace("B");
  ck_assert_int_eq(pinset_adopt(set, a, meta), 0);
  int fd = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(fd), 'A');
  close(fd);
}
END_TEST

START_TEST(bad_meta_refused) {
  int a = open(path, O_RDONLY | O_CLOEXEC);
  int meta = pinned_meta("", O_RDONLY); /* no path */
  ck_assert_int_eq(pinset_adopt(set, a, meta), -1);
  replace("B");
  int fd = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(fd), 'B');
  close(fd);
}
END_TEST

START_TEST(no_scope_not_pinned) {
  pinned_scope(NULL, NULL);
  int a = pinned_open(path, O_RDONLY);
  replace("B");
  int b = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(a), 'A');
  ck_assert_int_eq(first(b), 'B');
  close(a);
  close(b);
}
END_TEST

/* A stack's record matches the generation that pinned its files, a new
 * generation while the file is unchanged, and not once it is replaced;
 * sharing gives the new generation the same inode. */
START_TEST(record_same_and_shared) {
  struct pinrec rec = {0};
  pinned_scope(set, &rec);
  int a = pinned_open(path, O_RDONLY);
  pinned_scope(set, NULL);
  ck_assert_int_eq(rec.n, 1);
  struct pinset *next = pinset_new(2, -1);
  ck_assert_int_eq(pinrec_same(&rec, set), 1);
  ck_assert_int_eq(pinrec_same(&rec, next), 1);
  replace("B");
  ck_assert_int_eq(pinrec_same(&rec, set), 1); /* its pin: still A */
  ck_assert_int_eq(pinrec_same(&rec, next), 0);
  struct pinset *third = pinset_new(3, -1);
  replace("A"); /* another inode again */
  ck_assert_int_eq(pinrec_same(&rec, third), 0);
  pinrec_share(&rec, third);
  ck_assert_int_eq(pinrec_same(&rec, third), 1);
  pinned_scope(third, NULL);
  int c = pinned_open(path, O_RDONLY);
  struct stat s1, s2;
  fstat(a, &s1);
  fstat(c, &s2);
  ck_assert(s1.st_ino == s2.st_ino);
  pinned_scope(set, NULL);
  close(a);
  close(c);
  pinrec_clear(&rec);
  pinset_free(next);
  pinset_free(third);
}
END_TEST

/* A per-restore listener's pins are its own set: another owner opens the
 * path again, each new pin is reported under the restore's name, and
 * freeing its set leaves the generation's in place. */
START_TEST(owners_apart) {
  int sp[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
  int gen = pinned_open(path, O_RDONLY);
  struct pinset *r1set = pinset_new_for("r1", 7, sp[0]);
  ck_assert_ptr_nonnull(r1set);
  pinned_scope(r1set, NULL);
  replace("B");
  int r1 = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(r1), 'B'); /* not the generation's 'A' */
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  ck_assert_int_gt(ipc_recv(sp[1], &m, fds), 0);
  ck_assert_int_eq(m.type, IPC_PIN);
  ck_assert_str_eq(m.name, "r1");
  ck_assert_uint_eq(m.id, 7); /* the restore's serial */
  ck_assert_int_eq(first(fds[0]), 'B');
  for (int i = 0; i < IPC_MAX_FDS; i++)
    if (fds[i] >= 0) close(fds[i]);
  replace("C");
  int r1again = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(r1again), 'B');
  pinset_free(r1set); /* the restore is removed */
  r1set = pinset_new_for("r1", 8, -1);
  pinned_scope(r1set, NULL);
  int r1new = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(r1new), 'C'); /* freed: opened anew */
  pinned_scope(set, NULL);
  int genagain = pinned_open(path, O_RDONLY);
  ck_assert_int_eq(first(genagain), 'A');
  pinset_free(r1set);
  close(gen);
  close(r1);
  close(r1again);
  close(r1new);
  close(genagain);
  close(sp[0]);
  close(sp[1]);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pinned");
  const struct ufk_check_case cases[] = {
      {"rename_keeps_inode", rename_keeps_inode},
      {"writable_not_pinned", writable_not_pinned},
      {"missing_file", missing_file},
      {"adopted_from_earlier_worker", adopted_from_earlier_worker},
      {"bad_meta_refused", bad_meta_refused},
      {"owners_apart", owners_apart},
      {"no_scope_not_pinned", no_scope_not_pinned},
      {"record_same_and_shared", record_same_and_shared}};
  ufk_check_cases(s, cases, sizeof cases / sizeof *cases, setup, teardown, 0);
  return ufk_check_run(s);
}

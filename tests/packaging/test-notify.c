/* core/notify.c against a notification socket of our own, a path one and an
 * abstract one: the exact datagrams, the sender's credentials, the
 * descriptors passed for the fd store, and the LISTEN_FDS hand-back. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "checkrun.h"
#include "notify.h"

struct receiver {
  int fd;
  char dir[64];
  char path[128];
};

struct message {
  char text[4096];
  int fds[NOTIFY_MAX_FDS];
  int nfds;
  pid_t pid;
};

static void receiver_bind(struct receiver *r, int abstract) {
  r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(r->fd, 0);
  int on = 1;
  ck_assert_int_eq(setsockopt(r->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on),
                   0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  socklen_t len;
  r->dir[0] = 0;
  if (abstract) {
    snprintf(r->path, sizeof r->path, "@uffdkit-test-notify-%d-%ld", getpid(),
             (long)random());
    memcpy(a.sun_path + 1, r->path + 1, strlen(r->path) - 1);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(r->path));
  } else {
    snprintf(r->dir, sizeof r->dir, "/tmp/uffdkit-notify.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    snprintf(r->path, sizeof r->path, "%s/notify", r->dir);
    ck_assert_uint_lt(strlen(r->path), sizeof a.sun_path);
    memcpy(a.sun_path, r->path, strlen(r->path) + 1);
    len = sizeof a;
  }
  ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&a, len), 0);
  ck_assert_int_eq(setenv("NOTIFY_SOCKET", r->path, 1), 0);
}

static void receiver_close(struct receiver *r) {
  close(r->fd);
  if (r->dir[0]) {
    unlink(r->path);
    rmdir(r->dir);
  }
  unsetenv("NOTIFY_SOCKET");
}

/* Receives one datagram within a second; 0, or -1 if none came. */
static int receive(struct receiver *r, struct message *m) {
  memset(m, 0, sizeof *m);
  struct pollfd p = {.fd = r->fd, .events = POLLIN};
  if (poll(&p, 1, 1000) != 1) return -1;
  union {
    char buf[CMSG_SPACE(sizeof(int) * NOTIFY_MAX_FDS) +
             CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = m->text, .iov_len = sizeof m->text - 1};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = u.buf,
                      .msg_controllen = sizeof u.buf};
  ssize_t n = recvmsg(r->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  ck_assert_int_ge(n, 0);
  ck_assert_int_eq(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC), 0);
  m->text[n] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      m->nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      memcpy(m->fds, CMSG_DATA(c), sizeof(int) * (size_t)m->nfds);
    } else if (c->cmsg_type == SCM_CREDENTIALS) {
      struct ucred cr;
      memcpy(&cr, CMSG_DATA(c), sizeof cr);
      m->pid = cr.pid;
    }
  }
  return 0;
}

static void expect(struct receiver *r, const char *text) {
  struct message m;
  ck_assert_msg(receive(r, &m) == 0, "no datagram for '%s'", text);
  ck_assert_str_eq(m.text, text);
  ck_assert_int_eq(m.nfds, 0);
  ck_assert_int_eq(m.pid, getpid());
}

static void expect_nothing(struct receiver *r) {
  char b[16];
  ck_assert_int_lt(recv(r->fd, b, sizeof b, MSG_DONTWAIT), 0);
  ck_assert_int_eq(errno, EAGAIN);
}

static int same_file(int a, int b) {
  struct stat x, y;
  return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
         x.st_ino == y.st_ino;
}

START_TEST(no_socket_is_a_no_op) {
  unsetenv("NOTIFY_SOCKET");
  ck_assert_int_eq(notify_ready(), 0);
  ck_assert_int_eq(notify_status("x %d", 1), 0);
  ck_assert_int_eq(notify_watchdog(), 0);
  ck_assert_int_eq(notify_stopping(), 0);
  int fd = 0;
  ck_assert_int_eq(notify_fdstore(&fd, 1, "stdin"), 0);
  setenv("NOTIFY_SOCKET", "", 1);
  ck_assert_int_eq(notify_ready(), 0);
  unsetenv("NOTIFY_SOCKET");
}
END_TEST

static void state_messages(int abstract) {
  struct receiver r;
  receiver_bind(&r, abstract);
  ck_assert_int_eq(notify_ready(), 1);
  expect(&r, "READY=1");
  ck_assert_int_eq(
      notify_status("%d sessions on %d listeners, worker %s", 3, 2, "ready"),
      1);
  expect(&r, "STATUS=3 sessions on 2 listeners, worker ready");
  ck_assert_int_eq(notify_status("two\nlines\nREADY=1"), 1);
  expect(&r, "STATUS=two lines READY=1");
  ck_assert_int_eq(notify_watchdog(), 1);
  expect(&r, "WATCHDOG=1");
  ck_assert_int_eq(notify_reloading(), 1);
  expect(&r, "RELOADING=1");
  ck_assert_int_eq(notify_stopping(), 1);
  expect(&r, "STOPPING=1");
  ck_assert_int_eq(notify_send("A=1\nB=2", NULL, 0), 1);
  expect(&r, "A=1\nB=2");
  expect_nothing(&r);
  receiver_close(&r);
}

START_TEST(path_socket) {
  state_messages(0);
}
END_TEST

START_TEST(abstract_socket) {
  state_messages(1);
}
END_TEST

START_TEST(fdstore_passes_the_descriptors) {
  struct receiver r;
  receiver_bind(&r, 0);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  int mem = memfd_create("notify-test", MFD_CLOEXEC);
  ck_assert_int_eq(write(mem, "state", 5), 5);
  int fds[3] = {p[0], p[1], mem};
  ck_assert_int_eq(notify_fdstore(fds, 3, "s42.conn-uffd-shm"), 1);
  struct message m;
  ck_assert_int_eq(receive(&r, &m), 0);
  ck_assert_str_eq(m.text, "FDSTORE=1\nFDNAME=s42.conn-uffd-shm");
  ck_assert_int_eq(m.pid, getpid());
  ck_assert_int_eq(m.nfds, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_ne(m.fds[i], fds[i]); /* new descriptors, same files */
    ck_assert(same_file(m.fds[i], fds[i]));
  }
  /* The received ends work: write through the copy, read the original. */
  char b[8] = {0};
  ck_assert_int_eq(write(m.fds[1], "ok", 2), 2);
  ck_assert_int_eq(read(p[0], b, sizeof b), 2);
  ck_assert_str_eq(b, "ok");
  ck_assert_int_eq(pread(m.fds[2], b, 5, 0), 5);
  ck_assert_int_eq(memcmp(b, "state", 5), 0);
  for (int i = 0; i < 3; i++)
    close(m.fds[i]);

  ck_assert_int_eq(notify_fdstore_remove("s42.conn-uffd-shm"), 1);
  expect(&r, "FDSTOREREMOVE=1\nFDNAME=s42.conn-uffd-shm");

  /* The most one message may carry. */
  int many[NOTIFY_MAX_FDS];
  for (int i = 0; i < NOTIFY_MAX_FDS; i++)
    many[i] = mem;
  ck_assert_int_eq(notify_fdstore(many, NOTIFY_MAX_FDS, "many"), 1);
  ck_assert_int_eq(receive(&r, &m), 0);
  ck_assert_str_eq(m.text, "FDSTORE=1\nFDNAME=many");
  ck_assert_int_eq(m.nfds, NOTIFY_MAX_FDS);
  for (int i = 0; i < m.nfds; i++) {
    ck_assert(same_file(m.fds[i], mem));
    close(m.fds[i]);
  }
  close(p[0]);
  close(p[1]);
  close(mem);
  receiver_close(&r);
}
END_TEST

START_TEST(fdstore_refuses_bad_arguments) {
  struct receiver r;
  receiver_bind(&r, 1);
  int fd = 0;
  char longname[300];
  memset(longname, 'n', sizeof longname);
  longname[256] = 0; /* one more than systemd takes */
  const char *bad[] = {"a:b",         "",       "tab\there", "new\nline",
                       "caf\xc3\xa9", longname, NULL};
  for (int i = 0; bad[i]; i++) {
    errno = 0;
    ck_assert_int_eq(notify_fdstore(&fd, 1, bad[i]), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(notify_fdstore_remove(bad[i]), -1);
    ck_assert_int_eq(errno, EINVAL);
  }
  ck_assert_int_eq(notify_fdstore(NULL, 1, "x"), -1);
  ck_assert_int_eq(notify_fdstore(&fd, 0, "x"), -1);
  ck_assert_int_eq(errno, EINVAL);
  int many[NOTIFY_MAX_FDS + 1] = {0};
  ck_assert_int_eq(notify_fdstore(many, NOTIFY_MAX_FDS + 1, "x"), -1);
  ck_assert_int_eq(errno, EINVAL);
  longname[255] = 0; /* exactly the limit */
  ck_assert_int_eq(notify_fdstore(&fd, 1, longname), 1);
  struct message m;
  ck_assert_int_eq(receive(&r, &m), 0);
  ck_assert_int_eq(m.nfds, 1);
  close(m.fds[0]);
  ck_assert_int_eq((int)strlen(m.text),
                   (int)strlen("FDSTORE=1\nFDNAME=") + 255);
  expect_nothing(&r);
  receiver_close(&r);
}
END_TEST

START_TEST(bad_notify_socket) {
  struct {
    const char *value;
    int err;
  } cases[] = {
      {"relative/path", EAFNOSUPPORT},
      {"vsock:2:1234", EAFNOSUPPORT},
      {"@", EINVAL},
      {"/nonexistent/uffdkit/notify", ENOENT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    setenv("NOTIFY_SOCKET", cases[i].value, 1);
    errno = 0;
    ck_assert_int_eq(notify_ready(), -1);
    ck_assert_msg(errno == cases[i].err, "%s: errno %d, expected %d",
                  cases[i].value, errno, cases[i].err);
  }
  char path[200] = "/";
  memset(path + 1, 'p', 120);
  path[121] = 0;
  setenv("NOTIFY_SOCKET", path, 1);
  ck_assert_int_eq(notify_ready(), -1);
  ck_assert_int_eq(errno, ENAMETOOLONG);
  path[0] = '@';
  setenv("NOTIFY_SOCKET", path, 1);
  ck_assert_int_eq(notify_ready(), -1);
  ck_assert_int_eq(errno, ENAMETOOLONG);
  unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(watchdog_interval) {
  char pid[32], other[32];
  snprintf(pid, sizeof pid, "%d", getpid());
  snprintf(other, sizeof other, "%d", getpid() + 1);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  ck_assert_uint_eq(notify_watchdog_interval_us(), 0);
  setenv("WATCHDOG_USEC", "30000000", 1);
  ck_assert_uint_eq(notify_watchdog_interval_us(), 30000000);
  setenv("WATCHDOG_PID", pid, 1);
  ck_assert_uint_eq(notify_watchdog_interval_us(), 30000000);
  setenv("WATCHDOG_PID", other, 1);
  ck_assert_uint_eq(notify_watchdog_interval_us(), 0);
  setenv("WATCHDOG_PID", "self", 1);
  ck_assert_uint_eq(notify_watchdog_interval_us(), 0);
  setenv("WATCHDOG_PID", pid, 1);
  const char *bad[] = {
      "", "0", "-5", "12x", " 12", "abc", "99999999999999999999999", NULL};
  for (int i = 0; bad[i]; i++) {
    setenv("WATCHDOG_USEC", bad[i], 1);
    ck_assert_msg(notify_watchdog_interval_us() == 0, "WATCHDOG_USEC='%s'",
                  bad[i]);
  }
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}
END_TEST

/* The LISTEN_FDS tests put descriptors at 3, 4, ...  Whatever the test
 * harness has there is moved away first and put back before asserting. */
#define SLOTS 3
static int saved[SLOTS];

static void slots_save(void) {
  for (int i = 0; i < SLOTS; i++) {
    saved[i] = fcntl(LISTEN_FDS_START + i, F_DUPFD_CLOEXEC, 100);
    close(LISTEN_FDS_START + i);
  }
}

static void slots_restore(void) {
  for (int i = 0; i < SLOTS; i++) {
    close(LISTEN_FDS_START + i);
    if (saved[i] >= 0) {
      dup2(saved[i], LISTEN_FDS_START + i);
      close(saved[i]);
    }
  }
}

/* fd moved above the slots, so saving and filling them cannot close it. */
static int high(int fd) {
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 200);
  ck_assert_int_ge(h, 200);
  close(fd);
  return h;
}

/* Puts fds[i] at LISTEN_FDS_START + i, without close-on-exec, as systemd
 * passes them. */
static void slots_fill(const int *fds, int n) {
  for (int i = 0; i < n; i++)
    dup2(fds[i], LISTEN_FDS_START + i);
}

static void set_listen_env(const char *pid, const char *n, const char *names) {
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (pid) setenv("LISTEN_PID", pid, 1);
  if (n) setenv("LISTEN_FDS", n, 1);
  if (names) setenv("LISTEN_FDNAMES", names, 1);
}

struct listen_result {
  int n, err;
  char names[SLOTS][64];
  int nnames;
  int cloexec[SLOTS];
  int same[SLOTS];
  int env_left;
};

static struct listen_result run_listen(const int *fds, int nfds,
                                       const char *pid, const char *n,
                                       const char *names, int unset_env) {
  struct listen_result res = {0};
  slots_save();
  slots_fill(fds, nfds);
  set_listen_env(pid, n, names);
  char **got = (char **)1;
  errno = 0;
  res.n = listen_fds_with_names(unset_env, &got);
  res.err = errno;
  for (int i = 0; got && got != (char **)1 && got[i] && i < SLOTS; i++) {
    snprintf(res.names[i], sizeof res.names[i], "%s", got[i]);
    res.nnames = i + 1;
  }
  if (got == (char **)1)
    res.nnames = -1; /* *names was not set */
  else
    listen_fds_free_names(got);
  for (int i = 0; i < nfds; i++) {
    res.cloexec[i] = (fcntl(LISTEN_FDS_START + i, F_GETFD) & FD_CLOEXEC) != 0;
    res.same[i] = same_file(LISTEN_FDS_START + i, fds[i]);
  }
  res.env_left = (getenv("LISTEN_PID") != NULL) +
                 (getenv("LISTEN_FDS") != NULL) +
                 (getenv("LISTEN_FDNAMES") != NULL);
  slots_restore();
  set_listen_env(NULL, NULL, NULL);
  return res;
}

START_TEST(listen_fds_names) {
  char pid[32], other[32];
  snprintf(pid, sizeof pid, "%d", getpid());
  snprintf(other, sizeof other, "%d", getpid() + 1);
  int a = high(open("/dev/null", O_RDONLY | O_CLOEXEC));
  int b = high(memfd_create("b", MFD_CLOEXEC));
  int fds[2] = {a, b};

  struct listen_result r = run_listen(fds, 2, pid, "2", "l.a:s7.uffd", 1);
  ck_assert_int_eq(r.n, 2);
  ck_assert_int_eq(r.nnames, 2);
  ck_assert_str_eq(r.names[0], "l.a");
  ck_assert_str_eq(r.names[1], "s7.uffd");
  ck_assert(r.cloexec[0] && r.cloexec[1]);
  ck_assert(r.same[0] && r.same[1]);
  ck_assert_int_eq(r.env_left, 0);

  r = run_listen(fds, 2, pid, "2", NULL, 0);
  ck_assert_int_eq(r.n, 2);
  ck_assert_int_eq(r.nnames, 2);
  ck_assert_str_eq(r.names[0], "unknown");
  ck_assert_str_eq(r.names[1], "unknown");
  ck_assert_int_eq(r.env_left, 2); /* kept without unset_env */

  r = run_listen(fds, 1, pid, "1", "", 1);
  ck_assert_int_eq(r.n, 1);
  ck_assert_str_eq(r.names[0], "");

  /* Meant for another process (the variables were inherited): none. */
  r = run_listen(fds, 2, other, "2", "x:y", 1);
  ck_assert_int_eq(r.n, 0);
  ck_assert_int_eq(r.nnames, 0);
  ck_assert_int_eq(r.cloexec[0], 0); /* not touched */
  ck_assert_int_eq(r.env_left, 0);
  r = run_listen(fds, 0, NULL, "2", "x:y", 0);
  ck_assert_int_eq(r.n, 0);
  r = run_listen(fds, 0, pid, "0", NULL, 0);
  ck_assert_int_eq(r.n, 0);
  ck_assert_int_eq(r.nnames, 0);

  const char *bad_counts[] = {"", "two", "-1", "2x", NULL};
  for (int i = 0; bad_counts[i]; i++) {
    r = run_listen(fds, 2, pid, bad_counts[i], NULL, 1);
    ck_assert_msg(r.n == -1 && r.err == EINVAL, "LISTEN_FDS='%s'",
                  bad_counts[i]);
    ck_assert_int_eq(r.env_left, 0);
  }
  r = run_listen(fds, 2, pid, NULL, NULL, 0);
  ck_assert_int_eq(r.n, -1);
  ck_assert_int_eq(r.err, EINVAL);
  r = run_listen(fds, 2, pid, "2", "only-one", 0);
  ck_assert_int_eq(r.n, -1);
  ck_assert_int_eq(r.err, EINVAL);
  r = run_listen(fds, 2, pid, "2", "a:b:c", 0);
  ck_assert_int_eq(r.n, -1);
  ck_assert_int_eq(r.err, EINVAL);
  /* A descriptor that is not open. */
  r = run_listen(fds, 2, pid, "3", "a:b:c", 0);
  ck_assert_int_eq(r.n, -1);
  ck_assert_int_eq(r.err, EBADF);
  close(a);
  close(b);
}
END_TEST

/* What a restart looks like: descriptors stored with notify_fdstore come
 * back through LISTEN_FDS under their names, still the same files. */
START_TEST(fdstore_round_trip) {
  struct receiver r;
  receiver_bind(&r, 1);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int mem = memfd_create("session-state", MFD_CLOEXEC);
  ck_assert_int_eq(write(mem, "regions", 7), 7);
  ck_assert_int_eq(notify_fdstore(&l, 1, "listener.a"), 1);
  ck_assert_int_eq(notify_fdstore(&mem, 1, "s9.shm"), 1);
  struct message m1, m2;
  ck_assert_int_eq(receive(&r, &m1), 0);
  ck_assert_int_eq(receive(&r, &m2), 0);
  ck_assert_int_eq(m1.nfds, 1);
  ck_assert_int_eq(m2.nfds, 1);
  close(l);
  close(mem);
  receiver_close(&r);

  /* The manager passes what it stored, named as it was stored. */
  char pid[32];
  snprintf(pid, sizeof pid, "%d", getpid());
  int stored[2] = {high(m1.fds[0]), high(m2.fds[0])};
  char names[600];
  snprintf(names, sizeof names, "%s:%s", strstr(m1.text, "FDNAME=") + 7,
           strstr(m2.text, "FDNAME=") + 7);
  struct listen_result res = run_listen(stored, 2, pid, "2", names, 1);
  ck_assert_int_eq(res.n, 2);
  ck_assert_str_eq(res.names[0], "listener.a");
  ck_assert_str_eq(res.names[1], "s9.shm");
  ck_assert(res.same[0] && res.same[1]);
  char b[8] = {0};
  ck_assert_int_eq(pread(stored[1], b, 7, 0), 7);
  ck_assert_str_eq(b, "regions");
  close(stored[0]);
  close(stored[1]);
}
END_TEST

int main(void) {
  srandom((unsigned)getpid());
  Suite *s = suite_create("notify");
  TCase *t = tcase_create("notify");
  tcase_add_test(t, no_socket_is_a_no_op);
  tcase_add_test(t, path_socket);
  tcase_add_test(t, abstract_socket);
  tcase_add_test(t, fdstore_passes_the_descriptors);
  tcase_add_test(t, fdstore_refuses_bad_arguments);
  tcase_add_test(t, bad_notify_socket);
  tcase_add_test(t, watchdog_interval);
  tcase_add_test(t, listen_fds_names);
  tcase_add_test(t, fdstore_round_trip);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

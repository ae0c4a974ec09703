/* Unit tests of the control socket, the metrics' HTTP endpoint and the ctl
 * client against no daemon. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctltest.h"

/* ---- the socket ---- */

/* Made by main, so it is removed even when a test fails (a failed test
 * skips its teardown); each test works in a directory of its own in it. */
char basedir[64];
static char tmpdir[80];

/* mkdtemp's template: six 'X' at the end of prefix. */
char *make_dir(char *buf, size_t len, const char *prefix) {
  int n = snprintf(buf, len, "%s", prefix);
  if (n < 0 || (size_t)n + 7 > len) return NULL;
  memset(buf + n, 'X', 6);
  buf[n + 6] = 0;
  return mkdtemp(buf);
}

static void sock_setup(void) {
  setup();
  char prefix[72];
  snprintf(prefix, sizeof prefix, "%s/t.", basedir);
  ck_assert_ptr_nonnull(make_dir(tmpdir, sizeof tmpdir, prefix));
}

static void sock_teardown(void) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
  teardown();
}

static struct control *open_ctl(const char *path) {
  struct daemon_conf conf = {.control_socket = path};
  struct control *c = NULL;
  char err[512] = "";
  ck_assert_msg(control_open(&c, &conf, &V, err, sizeof err) == 0, "%s", err);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_ge(control_fd(c), 0);
  return c;
}

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Runs the control loop as the supervisor would until fd has data or
 * closes, at most ms milliseconds; returns the bytes read (0: closed, -1:
 * nothing in time). */
static ssize_t pump_read(struct control *c, int fd, char *buf, size_t len,
                         int ms) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, control_fd(c), &e);
  ssize_t r = -1;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct epoll_event ev;
    epoll_wait(ep, &ev, 1, control_timeout(c, 10));
    control_run(c);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1) {
      r = recv(fd, buf, len, MSG_DONTWAIT);
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
      break;
  }
  close(ep);
  return r;
}

/* Reads one whole response line. */
static char *read_reply(struct control *c, int fd) {
  static char buf[1 << 20];
  size_t len = 0;
  while (!memchr(buf, '\n', len)) {
    ssize_t n = pump_read(c, fd, buf + len, sizeof buf - len - 1, 2000);
    ck_assert_int_gt(n, 0);
    len += (size_t)n;
  }
  buf[len] = 0;
  return buf;
}

START_TEST(test_socket_roundtrip) {
  standard_view();
  char path[96];
  snprintf(path, sizeof path, "%s/sub/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(fcntl(control_fd(c), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  int fd = connect_to(path);
  /* Two requests in one write, then one in two pieces. */
  const char *two = "{\"cmd\":\"stats\"}\n{\"cmd\":\"bad\"}\n";
  ck_assert_int_eq(write(fd, two, strlen(two)), (ssize_t)strlen(two));
  char *r = read_reply(c, fd);
  ck_assert_str_eq(r + strlen(r) - 1, "\n");
  char *nl = strchr(r, '\n');
  if (nl[1] == 0) { /* the second reply had not arrived yet */
    ck_assert_ptr_nonnull(strstr(r, "\"listeners\""));
    r = read_reply(c, fd);
    ck_assert_ptr_nonnull(strstr(r, "\"error\":\"unknown cmd \\\"bad\\\""));
  } else {
    ck_assert_ptr_nonnull(strstr(nl + 1, "unknown cmd"));
  }
  ck_assert_int_eq(write(fd, "{\"cmd\":", 7), 7);
  char tmp[16];
  ck_assert_int_eq(pump_read(c, fd, tmp, sizeof tmp, 100), -1);
  ck_assert_int_eq(write(fd, "\"list\"}\r\n", 9), 9);
  r = read_reply(c, fd);
  ck_assert_ptr_nonnull(strstr(r, "\"sessions\":[{\"id\":42,"));
  /* A last request without a newline is answered at end of input. */
  ck_assert_int_eq(write(fd, "{\"cmd\":\"metrics\"}", 17), 17);
  shutdown(fd, SHUT_WR);
  r = read_reply(c, fd);
  ck_assert_ptr_nonnull(strstr(r, "{\"metrics\":\"# HELP"));
  ck_assert_int_eq(pump_read(c, fd, tmp, sizeof tmp, 1000), 0);
  close(fd);
  control_close(c);
  ck_assert_int_eq(stat(path, &st), -1);
}
END_TEST

START_TEST(test_socket_oversize) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fd = connect_to(path);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char chunk[8192];
  memset(chunk, ' ', sizeof chunk);
  size_t sent = 0;
  char buf[4096];
  ssize_t n = -1;
  /* Keep sending until the server gives up on the request. */
  for (int i = 0; i < 200 && n < 0; i++) {
    ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (w > 0) sent += (size_t)w;
    n = pump_read(c, fd, buf, sizeof buf - 1, 0);
  }
  ck_assert_int_gt(n, 0);
  ck_assert_uint_gt(sent, CONTROL_MAX_REQUEST);
  buf[n] = 0;
  ck_assert_str_eq(buf, "{\"error\":\"request longer than 65536 "
                        "bytes\",\"code\":\"bad_request\"}\n");
  /* And the connection is closed. */
  for (int i = 0; i < 100 && n > 0; i++)
    n = pump_read(c, fd, buf, sizeof buf, 20);
  ck_assert_int_le(n, 0);
  close(fd);
  control_close(c);
}
END_TEST

START_TEST(test_socket_slow_client) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fd = connect_to(path);
  ck_assert_int_eq(write(fd, "{\"cmd\"", 6), 6);
  time_t t0 = time(NULL);
  char buf[64];
  ssize_t n =
      pump_read(c, fd, buf, sizeof buf, CONTROL_CLIENT_TIMEOUT_MS + 2000);
  ck_assert_int_eq(n, 0); /* closed, without an answer */
  ck_assert_int_ge(time(NULL) - t0, CONTROL_CLIENT_TIMEOUT_MS / 1000 - 1);
  close(fd);
  control_close(c);
}
END_TEST

START_TEST(test_socket_too_many_clients) {
  char path[96];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  struct control *c = open_ctl(path);
  int fds[CONTROL_MAX_CLIENTS + 1];
  for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
    fds[i] = connect_to(path);
    control_run(c);
  }
  fds[CONTROL_MAX_CLIENTS] = connect_to(path);
  char buf[256];
  ssize_t n = pump_read(c, fds[CONTROL_MAX_CLIENTS], buf, sizeof buf - 1, 500);
  ck_assert_int_gt(n, 0);
  buf[n] = 0;
  ck_assert_ptr_nonnull(strstr(buf, "too many control connections"));
  for (int i = 0; i <= CONTROL_MAX_CLIENTS; i++)
    close(fds[i]);
  control_close(c);
}
END_TEST

START_TEST(test_socket_stale_and_errors) {
  char path[96], err[512];
  snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
  /* A socket file nobody listens on is replaced. */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  close(s);
  struct control *c = open_ctl(path);
  /* A second daemon on the same path is refused... */
  struct daemon_conf conf = {.control_socket = path};
  struct control *c2 = NULL;
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "another process is listening on it"));
  control_close(c);
  /* ...and so is a file that is not a socket. */
  FILE *f = fopen(path, "w");
  fclose(f);
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "exists and is not a socket"));
  /* "" and no metrics: nothing to serve. */
  conf.control_socket = "";
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), 0);
  ck_assert_ptr_null(c2);
  ck_assert_int_eq(control_fd(NULL), -1);
  ck_assert_int_eq(control_timeout(NULL, 7), 7);
  control_run(NULL);
  control_close(NULL);
  /* A bad metrics address is an error. */
  conf.metrics_listen = "nowhere:80";
  ck_assert_int_eq(control_open(&c2, &conf, &V, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "not an IP address"));
}
END_TEST

/* ---- HTTP ---- */

struct http_get {
  int port;
  const char *request;
  char reply[1 << 16];
  size_t len;
};

static void *http_client(void *arg) {
  struct http_get *g = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)g->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      write(fd, g->request, strlen(g->request)) ==
          (ssize_t)strlen(g->request)) {
    ssize_t n;
    while ((n = read(fd, g->reply + g->len, sizeof g->reply - g->len - 1)) > 0)
      g->len += (size_t)n;
  }
  g->reply[g->len] = 0;
  close(fd);
  return NULL;
}

/* One HTTP exchange, served from this thread as the supervisor would. */
static void http_exchange(struct metrics_http *h, struct http_get *g) {
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, http_client, g), 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, metrics_http_fd(h), &e);
  for (int i = 0; i < 300; i++) {
    int to = metrics_http_timeout(h);
    epoll_wait(ep, &e, 1, to < 0 || to > 10 ? 10 : to);
    metrics_http_run(h);
    if (pthread_tryjoin_np(t, NULL) == 0) {
      close(ep);
      return;
    }
  }
  ck_abort_msg("HTTP exchange did not finish");
}

START_TEST(test_http_metrics) {
  standard_view();
  char err[512];
  struct metrics_http *h =
      metrics_http_start("127.0.0.1:0", &V.stats, err, sizeof err);
  ck_assert_msg(h != NULL, "%s", err);
  ck_assert_int_gt(metrics_http_port(h), 0);
  static struct http_get g;
  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 200 OK\r\n", 17), "%s", g.reply);
  ck_assert_ptr_nonnull(strcasestr(
      g.reply, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
  char *body = strstr(g.reply, "\r\n\r\n");
  ck_assert_ptr_nonnull(body);
  char *t = render();
  ck_assert_str_eq(body + 4, t);
  free(t);

  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 404", 12), "%s", g.reply);

  memset(&g, 0, sizeof g);
  g.port = metrics_http_port(h);
  g.request = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
  http_exchange(h, &g);
  ck_assert_msg(!strncmp(g.reply, "HTTP/1.1 405", 12), "%s", g.reply);
  ck_assert_ptr_nonnull(strcasestr(g.reply, "\r\nAllow: GET, HEAD"));

  /* The same port twice is an error naming the address. */
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", metrics_http_port(h));
  ck_assert_ptr_null(metrics_http_start(addr, &V.stats, err, sizeof err));
  ck_assert_msg(strstr(err, "cannot listen on 127.0.0.1:"), "%s", err);
  metrics_http_stop(h);
}
END_TEST

/* ---- the client against no daemon ---- */

START_TEST(test_ctl_no_daemon) {
  char path[96];
  snprintf(path, sizeof path, "%s/none.sock", tmpdir);
  char *argv[] = {"uffdkit", "ctl", "--socket", path, "list", NULL};
  ck_assert_int_eq(ctl_main(5, argv), CTL_NO_DAEMON);
  char *bad[] = {"uffdkit", "ctl", "frob", NULL};
  ck_assert_int_eq(ctl_main(3, bad), CTL_USAGE);
  char *drain[] = {"uffdkit", "ctl", "drain", NULL};
  ck_assert_int_eq(ctl_main(3, drain), CTL_USAGE);
  char *extra[] = {"uffdkit", "ctl", "list", "x", NULL};
  ck_assert_int_eq(ctl_main(4, extra), CTL_USAGE);
}
END_TEST

TCase *socket_tcase(void) {
  TCase *k = tcase_create("socket");
  tcase_add_checked_fixture(k, sock_setup, sock_teardown);
  tcase_set_timeout(k, 30);
  tcase_add_test(k, test_socket_roundtrip);
  tcase_add_test(k, test_socket_oversize);
  tcase_add_test(k, test_socket_slow_client);
  tcase_add_test(k, test_socket_too_many_clients);
  tcase_add_test(k, test_socket_stale_and_errors);
  tcase_add_test(k, test_ctl_no_daemon);
#ifdef UFFDKIT_HAVE_MHD
  tcase_add_test(k, test_http_metrics);
#endif
  return k;
}

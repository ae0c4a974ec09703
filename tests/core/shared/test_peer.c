/* Unit tests of the decisions about a peer (allow lists, identity, who may
 * be signalled), the log limit every peer-triggered message goes through,
 * and quoting a peer's bytes in a message. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkrun.h"
#include "log.h"
#include "peer.h"
#include "utf8.h"

/* allow_uids and allow_gids both set: both must match (uffdkit.conf(5)). */
START_TEST(allow_lists) {
  uid_t uids[] = {1000, 1001};
  gid_t gids[] = {2000};
  struct listener_conf c = {.allow_uids = uids,
                            .n_allow_uids = 2,
                            .allow_gids = gids,
                            .n_allow_gids = 1};
  struct ucred both = {.uid = 1001, .gid = 2000};
  struct ucred uid_only = {.uid = 1000, .gid = 3000};
  struct ucred gid_only = {.uid = 0, .gid = 2000};
  ck_assert_msg(peer_allowed(&c, &both), "uid and gid listed: refused");
  ck_assert_msg(!peer_allowed(&c, &uid_only), "gid not listed: allowed");
  ck_assert_msg(!peer_allowed(&c, &gid_only), "uid not listed: allowed");
  struct listener_conf open = {0};
  ck_assert_msg(peer_allowed(&open, &gid_only), "no lists: refused");
  c.n_allow_gids = 0;
  ck_assert_msg(peer_allowed(&c, &uid_only), "uid listed, no gid list");
}
END_TEST

/* A peer in another pid namespace on a kernel without SO_PEERPIDFD has
 * pid 0 and no pidfd. */
START_TEST(identity) {
  ck_assert_msg(peer_refusal(0, -1, 0) != NULL,
                "pid 0, no pidfd, 1.1-1.11 handshake: accepted");
  ck_assert_msg(strstr(peer_refusal(0, -1, 0), "cannot be identified"),
                "reason '%s' does not say the process cannot be identified",
                peer_refusal(0, -1, 0));
  ck_assert_msg(peer_refusal(1234, -1, 0) != NULL,
                "no pidfd, 1.1-1.11 handshake: accepted");
  ck_assert_msg(peer_refusal(0, -1, 1) == NULL,
                "pid 0 but ends by hang-up (1.12): refused");
  ck_assert_msg(peer_refusal(0, 5, 0) == NULL, "a pidfd: refused");
  ck_assert_msg(!peer_can_signal(0, -1), "pid 0 without pidfd signallable");
  ck_assert_msg(!peer_can_signal(-1, -1), "pid -1 without pidfd signallable");
  ck_assert_msg(peer_can_signal(1234, -1) && peer_can_signal(0, 3),
                "a pid or a pidfd not signallable");
}
END_TEST

/* kill(0) is our process group and kill(-1) every process we may signal:
 * never.  Signal 0 shows what would have happened without sending one. */
START_TEST(never_signal_pid_0) {
  errno = 0;
  ck_assert_msg(peer_signal(-1, 0, 0) == -1 && errno == ESRCH,
                "pid 0 was signalled (errno %d)", errno);
  errno = 0;
  ck_assert_msg(peer_signal(-1, -1, 0) == -1 && errno == ESRCH,
                "pid -1 was signalled (errno %d)", errno);
  ck_assert_msg(peer_signal(-1, getpid(), 0) == 0, "own pid: %s",
                strerror(errno));
}
END_TEST

/* Lines written to stderr while fn runs. */
static int count_lines(void (*fn)(void), char *last, size_t cap) {
  char path[] = "/tmp/uffdkit-log.XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  unlink(path);
  dup2(fd, 2);
  fn();
  dup2(saved, 2);
  close(saved);
  char buf[65536];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  int lines = 0;
  for (char *p = buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
    lines++;
    *nl = 0;
    size_t len = strlen(p) < cap - 1 ? strlen(p) : cap - 1;
    memcpy(last, p, len);
    last[len] = 0;
  }
  return lines;
}

static struct log_limit lim_a, lim_b;

static void flood(void) {
  for (int i = 0; i < 1000; i++)
    log_limited(&lim_a, LOG_WARN, "refused pid %d", i);
  log_limited(&lim_b, LOG_WARN, "another listener's line");
}

static void next_window(void) {
  lim_a.window -= LOG_LIMIT_WINDOW_NS; /* as if the window had passed */
  log_limited(&lim_a, LOG_WARN, "refused pid 1000");
}

START_TEST(rate_limit) {
  char last[4096] = "";
  int n = count_lines(flood, last, sizeof last);
  ck_assert_msg(n == LOG_LIMIT_BURST + 1,
                "1000 lines under one limit and 1 under another gave %d "
                "lines, expected %d",
                n, LOG_LIMIT_BURST + 1);
  ck_assert_msg(strstr(last, "another listener's line"),
                "the other limit's line is missing: '%s'", last);
  n = count_lines(next_window, last, sizeof last);
  char want[64];
  snprintf(want, sizeof want, "(%d similar messages suppressed)",
           1000 - LOG_LIMIT_BURST);
  ck_assert_msg(n == 1 && strstr(last, "refused pid 1000") &&
                    strstr(last, want),
                "next window: %d lines, last '%s', expected one with '%s'", n,
                last, want);
}
END_TEST

START_TEST(quote) {
  char out[64];
  utf8_quote(out, sizeof out, "ok\xff\xc3\xa9\n", 64);
  ck_assert_str_eq(out, "ok\\xff\xc3\xa9\\x0a");
  /* Never cut inside a character: 2 characters of "éé". */
  utf8_quote(out, sizeof out, "\xc3\xa9\xc3\xa9\xc3\xa9", 2);
  ck_assert_str_eq(out, "\xc3\xa9\xc3\xa9");
  utf8_quote(out, 4, "\xc3\xa9\xc3\xa9", 64);
  ck_assert_str_eq(out, "\xc3\xa9");
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-peer");
  TCase *t = tcase_create("decisions");
  tcase_add_test(t, allow_lists);
  tcase_add_test(t, identity);
  tcase_add_test(t, never_signal_pid_0);
  suite_add_tcase(s, t);
  TCase *l = tcase_create("messages");
  tcase_add_test(l, rate_limit);
  tcase_add_test(l, quote);
  suite_add_tcase(s, l);
  return ufk_check_run(s);
}

/* Unit tests of the Prometheus rendering of the statistics. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctltest.h"

/* ---- metrics ---- */

START_TEST(test_metrics_counters) {
  standard_view();
  char *t = render();
  ck_line(t, "# HELP uffdkit_faults_total Page faults read from "
             "userfaultfds.");
  ck_line(t, "# TYPE uffdkit_faults_total counter");
  ck_line(t, "uffdkit_faults_total{listener=\"a\"} 120");
  ck_line(t, "uffdkit_faults_total{listener=\"b\"} 7");
  ck_line(t, "uffdkit_pages_copied_total{listener=\"a\"} 108");
  ck_line(t, "uffdkit_zero_pages_total{listener=\"a\"} 12");
  ck_line(t, "uffdkit_bytes_copied_total{listener=\"a\"} 442368");
  ck_line(t, "uffdkit_removes_total{listener=\"a\"} 1");
  ck_line(t, "uffdkit_removed_pages_total{listener=\"a\"} 4");
  ck_line(t, "uffdkit_stale_faults_total{listener=\"a\"} 6");
  ck_line(t, "uffdkit_eagain_total{listener=\"a\"} 7");
  ck_line(t, "uffdkit_source_errors_total{listener=\"a\"} 8");
  ck_line(t, "uffdkit_prefetched_pages_total{listener=\"b\"} 0");
  ck_line(t, "# TYPE uffdkit_sessions_live gauge");
  ck_line(t, "uffdkit_sessions_live{listener=\"a\"} 1");
  ck_line(t, "uffdkit_sessions_total{listener=\"a\"} 5");
  ck_line(t, "uffdkit_sessions_total{listener=\"b\"} 2");
  ck_line(t, "uffdkit_refused_peers_total{listener=\"a\"} 2");
  ck_line(t, "uffdkit_handshake_errors_total{listener=\"a\"} 3");
  ck_line(t, "uffdkit_worker_restarts_total{listener=\"a\"} 1");
  ck_line(t, "uffdkit_listener_info{listener=\"a\",socket=\"/run/a.sock\","
             "source=\"http+cache\"} 1");
  ck_assert_int_eq(t[strlen(t) - 1], '\n');
  free(t);
}
END_TEST

START_TEST(test_metrics_histogram) {
  standard_view();
  char *t = render();
  const char *m = "uffdkit_fault_service_seconds";
  char line[256];
  snprintf(line, sizeof line, "# TYPE %s histogram", m);
  ck_line(t, line);
  /* Buckets 0 (1), 3 (2) and the last (1, from the live session). */
  static const char *const le[LAT_BUCKETS] = {
      "0.000004", "0.000008", "0.000016", "0.000032", "0.000064", "0.000128",
      "0.000256", "0.000512", "0.001024", "0.002048", "0.004096", "0.008192",
      "0.016384", "0.032768", "0.065536", "+Inf"};
  for (int k = 0; k < LAT_BUCKETS; k++) {
    int cum = k < 3 ? 1 : k < LAT_BUCKETS - 1 ? 3 : 4;
    snprintf(line, sizeof line, "%s_bucket{listener=\"a\",le=\"%s\"} %d", m,
             le[k], cum);
    ck_line(t, line);
    snprintf(line, sizeof line, "%s_bucket{listener=\"b\",le=\"%s\"} 0", m,
             le[k]);
    ck_line(t, line);
  }
  snprintf(line, sizeof line, "%s_sum{listener=\"a\"} 1.500000123", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_count{listener=\"a\"} 4", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_sum{listener=\"b\"} 0", m);
  ck_line(t, line);
  snprintf(line, sizeof line, "%s_count{listener=\"b\"} 0", m);
  ck_line(t, line);
  ck_assert_int_eq(count_substr(t, "_bucket{listener=\"a\""), LAT_BUCKETS);
  free(t);
}
END_TEST

START_TEST(test_metrics_plugin_counters) {
  standard_view();
  char *t = render();
  /* One family across listeners and instances, with the first help. */
  ck_line(t, "# HELP uffdkit_plugin_bytes_fetched_total body bytes received");
  ck_line(t, "# TYPE uffdkit_plugin_bytes_fetched_total counter");
  ck_assert_int_eq(
      count_substr(t, "# TYPE uffdkit_plugin_bytes_fetched_total "), 1);
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"a\","
             "instance=\"a/http\"} 1000");
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"a\","
             "instance=\"a/cache\"} 500");
  ck_line(t, "uffdkit_plugin_bytes_fetched_total{listener=\"b\","
             "instance=\"b/mmap\"} 9");
  ck_line(t, "uffdkit_plugin_hits_total{listener=\"a\",instance=\"a/cache\"} "
             "3");
  /* Names made valid, _total not doubled, help escaped. */
  ck_line(t, "uffdkit_plugin_odd_name_x_total{listener=\"b\","
             "instance=\"b/mmap\"} 1");
  ck_line(t, "# HELP uffdkit_plugin_odd_name_x_total a\\\\b\\nc");
  ck_line(t, "uffdkit_plugin_reads_total{listener=\"b\",instance=\"b/mmap\"} "
             "2");
  free(t);
}
END_TEST

/* Every sample follows the TYPE line of its own family, and each family
 * is declared once: what the 0.0.4 text format requires. */
START_TEST(test_metrics_grouping) {
  standard_view();
  char *t = render();
  char family[128] = "", seen[64][128];
  int nseen = 0;
  for (char *p = t; *p;) {
    char *e = strchr(p, '\n');
    ck_assert_ptr_nonnull(e);
    *e = 0;
    char name[128];
    if (sscanf(p, "# TYPE %127s", name) == 1) {
      for (int i = 0; i < nseen; i++)
        ck_assert_str_ne(seen[i], name);
      snprintf(seen[nseen++], sizeof seen[0], "%s", name);
      snprintf(family, sizeof family, "%s", name);
    } else if (p[0] != '#') {
      size_t n = strcspn(p, "{ ");
      ck_assert_msg(!strncmp(p, family, strlen(family)) &&
                        (n == strlen(family) ||
                         !strcmp(p + strlen(family), "") ||
                         p[strlen(family)] == '_'),
                    "sample %s outside its family %s", p, family);
    }
    p = e + 1;
  }
  free(t);
}
END_TEST

START_TEST(test_metrics_escaping) {
  add_listener("we\"ird\\na\nme", "/run/x \"y\".sock", "mmap");
  counter(ST[0], "c", "in\"st\\", "h", 5);
  char *t = render();
  ck_line(t, "uffdkit_faults_total{listener=\"we\\\"ird\\\\na\\nme\"} 0");
  ck_line(t, "uffdkit_listener_info{listener=\"we\\\"ird\\\\na\\nme\","
             "socket=\"/run/x \\\"y\\\".sock\",source=\"mmap\"} 1");
  ck_line(t, "uffdkit_plugin_c_total{listener=\"we\\\"ird\\\\na\\nme\","
             "instance=\"in\\\"st\\\\\"} 5");
  free(t);
}
END_TEST

START_TEST(test_metrics_empty) {
  char *t = render();
  ck_line(t, "# TYPE uffdkit_faults_total counter");
  ck_assert_ptr_null(strstr(t, "{"));
  free(t);
}
END_TEST

START_TEST(test_metrics_listen_parse) {
  struct sockaddr_storage ss;
  socklen_t len;
  char err[256];
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  ck_assert_int_eq(metrics_parse_listen("9464", &ss, &len, err, sizeof err), 0);
  ck_assert_int_eq(a4->sin_family, AF_INET);
  ck_assert_uint_eq(ntohs(a4->sin_port), 9464);
  ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
  ck_assert_int_eq(
      metrics_parse_listen("0.0.0.0:80", &ss, &len, err, sizeof err), 0);
  ck_assert_uint_eq(a4->sin_addr.s_addr, 0);
  ck_assert_int_eq(
      metrics_parse_listen("localhost:1", &ss, &len, err, sizeof err), 0);
  ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
  ck_assert_int_eq(
      metrics_parse_listen("[::1]:9464", &ss, &len, err, sizeof err), 0);
  ck_assert_int_eq(a6->sin6_family, AF_INET6);
  ck_assert_uint_eq(ntohs(a6->sin6_port), 9464);
  ck_assert_uint_eq(len, sizeof *a6);
  static const struct {
    const char *in, *msg;
  } bad[] = {
      {":9464", "give a host"},
      {"host:abc", "port must be"},
      {"1.2.3.4:70000", "port must be"},
      {"::1:9464", "brackets"},
      {"example.com:80", "not an IP address"},
      {"[::1]9464", "expected [IPV6]:PORT"},
      {"", "port must be"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    ck_assert_int_eq(
        metrics_parse_listen(bad[i].in, &ss, &len, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad[i].msg), "'%s': %s", bad[i].in, err);
  }
}
END_TEST

TCase *metrics_tcase(void) {
  TCase *m = tcase_create("metrics");
  tcase_add_checked_fixture(m, setup, teardown);
  tcase_add_test(m, test_metrics_counters);
  tcase_add_test(m, test_metrics_histogram);
  tcase_add_test(m, test_metrics_plugin_counters);
  tcase_add_test(m, test_metrics_grouping);
  tcase_add_test(m, test_metrics_escaping);
  tcase_add_test(m, test_metrics_empty);
  tcase_add_test(m, test_metrics_listen_parse);
  return m;
}

/* Templates: values checked, placeholders expanded, plugins never
 * variable (core/shared/template.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "config.h"
#include "conftext.h"
#include "template.h"

static const char conf_text[] =
    "templates = ( { name = \"t\"; vars = [ \"b\", \"s\" ];\n"
    "  socket = \"/run/x/{s}.sock\"; expiry = \"30s\"; one_shot = false;\n"
    "  serve_uids = [ 5000 ];\n"
    "  source = { plugin = \"mmap\"; path = \"/store/{b}/{{raw}}-{id}\"; };\n"
    "} );\n";

static void load(struct daemon_conf *c) {
  char err[1024];
  int r = conf_load_string_t(c, conf_text, "test", err, sizeof err);
  ck_assert_msg(r == 0, "%s", err);
}

START_TEST(test_values) {
  char err[256];
  ck_assert_int_eq(template_check_value_t("v", "b-1.x_Y", 64, err, sizeof err),
                   0);
  ck_assert_int_eq(template_check_value_t("v", "..", 64, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "starts with '.'"));
  ck_assert_int_eq(template_check_value_t("v", "a/b", 64, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "0x2f"));
  ck_assert_int_eq(template_check_value_t("v", "", 64, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "is empty"));
  char longv[66];
  memset(longv, 'a', 65);
  longv[65] = 0;
  ck_assert_int_eq(template_check_value_t("v", longv, 64, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "65 bytes long"));
}
END_TEST

START_TEST(test_expand) {
  struct daemon_conf c;
  load(&c);
  ck_assert_int_eq(c.n_listeners, 0);
  const struct template_conf *t = template_find(&c, "t");
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(t->n_vars, 2);
  ck_assert_int_eq(t->one_shot, 0);
  ck_assert_uint_eq(t->expiry_ns, 30000000000ull);
  ck_assert_uint_eq(t->start_timeout_ns, 60000000000ull); /* the default */
  struct template_var v[] = {{"b", "b1"}, {"s", "s1"}};
  char err[1024];
  uid_t uid = 5000;
  char *text = template_expand_t(&c, t, "r1", v, 2, &uid, err, sizeof err);
  ck_assert_msg(text != NULL, "%s", err);
  struct daemon_conf r;
  int rc = conf_load_string_t(&r, text, "restore", err, sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", err, text);
  ck_assert_int_eq(r.n_listeners, 1);
  ck_assert_str_eq(r.listeners[0].name, "r1");
  ck_assert_str_eq(r.listeners[0].socket, "/run/x/s1.sock");
  ck_assert_str_eq(r.listeners[0].socket_owner, "5000");
  ck_assert_int_eq(r.listeners[0].n_allow_uids, 1);
  const char *path = NULL;
  config_setting_lookup_string(r.listeners[0].source, "path", &path);
  ck_assert_str_eq(path, "/store/b1/{raw}-r1");
  conf_free(&r);
  free(text);
  struct template_var bad[] = {{"b", "b1"}};
  ck_assert_ptr_null(
      template_expand_t(&c, t, "r2", bad, 1, NULL, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "needs variable 's'"));
  struct template_var extra[] = {{"b", "b1"}, {"s", "s"}, {"p", "x"}};
  ck_assert_ptr_null(
      template_expand_t(&c, t, "r3", extra, 3, NULL, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "declares no variable 'p'"));
  conf_free(&c);
}
END_TEST

/* start_timeout: a duration, as expiry. */
START_TEST(test_start_timeout) {
  struct daemon_conf c;
  char err[1024];
  int r = conf_load_string_t(&c,
                             "templates = ( { name = \"t\"; socket = \"/x\";"
                             " start_timeout = \"1500ms\"; source = {"
                             " plugin = \"mmap\"; path = \"/m\"; }; } );",
                             "test", err, sizeof err);
  ck_assert_msg(r == 0, "%s", err);
  ck_assert_uint_eq(template_find(&c, "t")->start_timeout_ns, 1500000000ull);
  conf_free(&c);
}
END_TEST

START_TEST(test_refused_at_load) {
  static const char *const bad[] = {
      "templates = ( { name = \"t\"; vars = [ \"p\" ]; socket = \"/x\";"
      " source = { plugin = \"{p}\"; }; } );",
      "templates = ( { name = \"t\"; socket = \"/x/{nope}\";"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
      "templates = ( { name = \"t\"; vars = [ \"id\" ]; socket = \"/x\";"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
      "templates = ( { name = \"t\"; socket = \"/x\"; bogus = 1;"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
      "templates = ( { name = \"t\"; socket = \"/x\"; start_timeout = 0;"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
      "templates = ( { name = \"t\"; socket = \"/x\"; start_timeout = \"25h\";"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
      "templates = ( { name = \"t\"; socket = \"/x\"; start_timeout = true;"
      " source = { plugin = \"mmap\"; path = \"/m\"; }; } );",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct daemon_conf c;
    char err[1024] = "";
    ck_assert_msg(conf_load_string_t(&c, bad[i], "bad", err, sizeof err) < 0,
                  "accepted: %s", bad[i]);
    ck_assert_ptr_nonnull(strstr(err, "bad:"));
    conf_free(&c);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("template");
  TCase *tc = tcase_create("template");
  tcase_add_test(tc, test_values);
  tcase_add_test(tc, test_expand);
  tcase_add_test(tc, test_refused_at_load);
  tcase_add_test(tc, test_start_timeout);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

/* Unit tests of plugin loading: the ABI checks of plugin_open_file on small
 * plugins each breaking one rule, plugin_get's lookup in a plugin
 * directory, and the settings checks stack_check makes, each message
 * naming the plugin file or the config file and line (as text, then as
 * the struct conf_err's file and line). */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkrun.h"
#include "config.h"
#include "conftext.h"
#include "host.h"
#include "hosttext.h"
#include "plugin.h"
#include "stack.h"

#ifndef TEST_PLUGIN_DIR
#error "TEST_PLUGIN_DIR must name the directory of the test plugins"
#endif
#define DIR TEST_PLUGIN_DIR

static char ERR[4096];

static const char *path_of(const char *name) {
  static char p[1024];
  snprintf(p, sizeof p, "%s/lib%s.so", DIR, name);
  return p;
}

static void contains_all(const char *msg, const char *what, va_list ap) {
  for (const char *w; (w = va_arg(ap, const char *));)
    ck_assert_msg(strstr(msg, w), "%s: message '%s' does not contain '%s'",
                  what, msg, w);
}

/* plugin_open_file must refuse lib<name>.so with a message naming the
 * file and holding every word. */
static void open_refused(const char *name, ...) {
  struct plugin p;
  const char *path = path_of(name);
  ck_assert_msg(access(path, R_OK) == 0, "test plugin %s was not built", path);
  ERR[0] = 0;
  int r = plugin_open_file_t(path, &p, ERR, sizeof ERR);
  ck_assert_msg(r < 0, "%s loaded, expected a refusal", path);
  ck_assert_msg(strstr(ERR, path), "message '%s' does not name the file %s",
                ERR, path);
  ck_assert_msg(!strchr(ERR, '\n'), "message is not one line: '%s'", ERR);
  va_list ap;
  va_start(ap, name);
  contains_all(ERR, name, ap);
  va_end(ap);
}

START_TEST(good_plugin) {
  struct plugin p;
  int r = plugin_open_file_t(path_of("tgood"), &p, ERR, sizeof ERR);
  ck_assert_msg(r == 0, "libtgood.so refused: %s", ERR);
  ck_assert_str_eq(p.name, "tgood");
  ck_assert_str_eq(p.path, path_of("tgood"));
  ck_assert_uint_eq(p.p.abi_major, UFK_ABI_MAJOR);
  ck_assert_uint_eq(p.p.struct_size, sizeof(struct ufk_plugin));
  ck_assert_msg(p.p.read && p.p.create && p.p.get_size && p.p.caps,
                "callbacks of libtgood.so lost in the copy");
  ck_assert_msg(p.p.params && !strcmp(p.p.params[0].key, "path"),
                "params of libtgood.so lost in the copy");
  plugin_close_file(&p);
  ck_assert_msg(p.dl == NULL && p.name == NULL, "plugin_close_file left state");
}
END_TEST

START_TEST(abi_major) {
  open_refused("tmajor", "ABI major 2", "speaks 1", NULL);
}
END_TEST

START_TEST(abi_newer_minor) {
  char need[32];
  snprintf(need, sizeof need, "needs ABI %d.%d", UFK_ABI_MAJOR,
           UFK_ABI_MINOR + 1);
  open_refused("tminor", need, "upgrade", NULL);
}
END_TEST

START_TEST(struct_too_small) {
  open_refused("ttiny", "struct size 16", "too small", NULL);
}
END_TEST

START_TEST(missing_read) {
  open_refused("tnoread", "'tnoread'", "required callback read", NULL);
}
END_TEST

START_TEST(missing_create) {
  open_refused("tnocreate", "required callback create", NULL);
}
END_TEST

START_TEST(bad_name) {
  open_refused("tbadname", "plugin name", "[a-z0-9-]", NULL);
}
END_TEST

START_TEST(bad_thread_model) {
  open_refused("tthreads", "thread model 9", NULL);
}
END_TEST

START_TEST(no_entry_symbol) {
  open_refused("tplain", "not a uffdkit plugin", UFFDKIT_ENTRY_SYMBOL, NULL);
}
END_TEST

START_TEST(null_entry) {
  open_refused("tnullentry", "not a uffdkit plugin", NULL);
}
END_TEST

/* A file that is not an ELF object at all: dlopen's reason, with the
 * file's name. */
START_TEST(not_elf) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/uffdkit-core-test-%d.so", (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_msg(fd >= 0, "cannot create %s", path);
  ck_assert_int_eq(write(fd, "not an ELF object\n", 18), 18);
  close(fd);
  struct plugin p;
  int r = plugin_open_file_t(path, &p, ERR, sizeof ERR);
  unlink(path);
  ck_assert_msg(r < 0, "a text file loaded as a plugin");
  ck_assert_msg(strstr(ERR, path), "message '%s' does not name %s", ERR, path);
}
END_TEST

/* A plugin built against an older minor declares a struct_size that ends
 * before the later fields: it loads, and whatever lies past struct_size
 * (here a caps() that aborts) is treated as absent. */
START_TEST(older_minor) {
  struct plugin p;
  int r = plugin_open_file_t(path_of("told"), &p, ERR, sizeof ERR);
  ck_assert_msg(r == 0, "an older-minor plugin was refused: %s", ERR);
  ck_assert_uint_eq(p.p.struct_size, offsetof(struct ufk_plugin, caps));
  ck_assert_msg(p.p.caps == NULL,
                "caps() lies past struct_size and must read as absent");
  ck_assert_msg(p.p.read != NULL && p.p.create != NULL,
                "callbacks inside struct_size must be kept");
  plugin_close_file(&p);

  /* And it serves: a whole stack on it never calls the trap. */
  struct daemon_conf c;
  char text[512];
  snprintf(text, sizeof text,
           "uffdkit = { plugin_dir = \"%s\"; };\n"
           "listeners = ( { name = \"a\"; socket = \"/tmp/a\";\n"
           "  source = { plugin = \"told\"; path = \"/x\"; }; } );\n",
           DIR);
  ck_assert_msg(conf_load_string_t(&c, text, "test.conf", ERR, sizeof ERR) == 0,
                "%s", ERR);
  struct stack *s = stack_build_t(host_table(), &c, &c.listeners[0], DIR, NULL,
                                  ERR, sizeof ERR);
  ck_assert_msg(s != NULL, "stack on told: %s", ERR);
  ck_assert_msg(stack_flags(s) == 0,
                "flags %u: without caps() they are the plugin's own (0)",
                stack_flags(s));
  unsigned char buf[4096];
  ck_assert_int_eq(stack_read(s, buf, sizeof buf, 8192, 0), 0);
  for (unsigned k = 0; k < sizeof buf; k++)
    ck_assert_msg(buf[k] == (unsigned char)((8192 + k) * 7),
                  "byte %u read through the stack is wrong", 8192 + k);
  stack_destroy(s);
  plugin_unload_all();
  conf_free(&c);
}
END_TEST

START_TEST(plugin_get_lookup) {
  const struct plugin *a =
      plugin_get_t(DIR, "tgood", 0, host_table(), ERR, sizeof ERR);
  ck_assert_msg(a != NULL, "tgood: %s", ERR);
  const struct plugin *b =
      plugin_get_t(DIR, "tgood", 0, host_table(), ERR, sizeof ERR);
  ck_assert_msg(a == b, "a plugin must be loaded once");
  const struct plugin *c =
      plugin_get_t(DIR, path_of("tgood"), 0, host_table(), ERR, sizeof ERR);
  ck_assert_msg(c == a, "the same file named by path must be the same plugin");
  ck_assert_msg(plugin_get_t(DIR, "tgood", 1, host_table(), ERR, sizeof ERR) ==
                    NULL,
                "a source given as a layer");
  ck_assert_msg(strstr(ERR, "'tgood' is a source, not a layer"), "'%s'", ERR);
  ck_assert_msg(plugin_get_t(DIR, "tlayer", 0, host_table(), ERR, sizeof ERR) ==
                    NULL,
                "a layer given as a source");
  ck_assert_msg(strstr(ERR, "'tlayer' is a layer, not a source"), "'%s'", ERR);
  ck_assert_msg(plugin_get_t(DIR, "nosuch", 0, host_table(), ERR, sizeof ERR) ==
                    NULL,
                "a missing plugin was found");
  ck_assert_msg(strstr(ERR, "no plugin 'nosuch'") && strstr(ERR, DIR),
                "'%s' must name the plugin and the directory", ERR);
  ck_assert_msg(plugin_get_t(DIR, "tmajor", 0, host_table(), ERR, sizeof ERR) ==
                    NULL,
                "a plugin of another major loaded");
  ck_assert_msg(strstr(ERR, path_of("tmajor")), "'%s' must name the file", ERR);
  plugin_unload_all();
}
END_TEST

/* ---- settings, through stack_check ---- */

static struct daemon_conf C;
static int have_conf;

static void teardown(void) {
  if (have_conf) conf_free(&C);
  have_conf = 0;
  plugin_unload_all();
}

/* Loads config text with plugin_dir set into C; line 1 is the uffdkit
 * group, line 2 the listener, line 3 onwards `rest`. */
static void load_config(const char *rest) {
  char text[2048];
  snprintf(text, sizeof text,
           "uffdkit = { plugin_dir = \"%s\"; };\n"
           "listeners = ( { name = \"a\"; socket = \"/tmp/a\";\n%s } );\n",
           DIR, rest);
  ERR[0] = 0;
  if (have_conf) conf_free(&C);
  have_conf = 1;
  if (conf_load_string_t(&C, text, "test.conf", ERR, sizeof ERR) < 0)
    ck_abort_msg("config refused before plugins were checked: %s", ERR);
}

static int check_config(const char *rest) {
  load_config(rest);
  return stack_check_t(host_table(), &C, &C.listeners[0], DIR, ERR, sizeof ERR);
}

static void settings_ok(const char *rest) {
  int r = check_config(rest);
  ck_assert_msg(r == 0, "settings refused: %s\n%s", ERR, rest);
}

/* The message must start with "test.conf:LINE: " (unless LINE is 0) and
 * hold every word. */
static void settings_refused(const char *rest, int line, ...) {
  int r = check_config(rest);
  ck_assert_msg(r < 0, "settings accepted, expected a refusal:\n%s", rest);
  char want[64];
  snprintf(want, sizeof want, "test.conf:%d: ", line);
  ck_assert_msg(!line || !strncmp(ERR, want, strlen(want)),
                "message '%s' does not start with '%s'", ERR, want);
  va_list ap;
  va_start(ap, line);
  contains_all(ERR, rest, ap);
  va_end(ap);
}

START_TEST(settings_good) {
  settings_ok("source = { plugin = \"tgood\"; path = \"/x\"; count = 3;\n"
              "  flag = true; bufsize = \"8K\"; timeout = \"250ms\";\n"
              "  tags = ( \"a\", \"b\" ); inner = { k = 1; }; };");
  /* The same types written as strings, as from the command line. */
  settings_ok("source = { plugin = \"tgood\"; path = \"/x\"; count = \"3\";\n"
              "  flag = \"yes\"; bufsize = \"1M\"; timeout = \"2\";\n"
              "  tags = \"one\"; };");
  settings_ok("source = { plugin = \"tgood\"; path = \"/x\"; };\n"
              "layers = ( { layer = \"tlayer\"; count = 2; },\n"
              "  { layer = \"tlayer\"; } );");
  char byname[1200];
  snprintf(byname, sizeof byname,
           "source = { plugin = \"%s\"; path = \"/x\"; };", path_of("tgood"));
  settings_ok(byname);
}
END_TEST

START_TEST(settings_unknown) {
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  colour = \"red\"; };",
                   4, "a/tgood", "unknown setting 'colour'", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\"; };\n"
                   "layers = ( { layer = \"tlayer\";\n"
                   "  cuont = 1; } );",
                   5, "a/tlayer", "unknown setting 'cuont'", NULL);
  /* 'layer' belongs to a layer's group, not a source's. */
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  layer = \"tlayer\"; };",
                   4, "unknown setting 'layer'", NULL);
}
END_TEST

START_TEST(settings_wrong_type) {
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  count = \"three\"; };",
                   4, "a/tgood", "'count' must be an integer", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  count = 1.5; };",
                   4, "'count' must be an integer", NULL);
  settings_refused("source = { plugin = \"tgood\";\n"
                   "  path = 5; };",
                   4, "'path' must be a string", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  flag = \"maybe\"; };",
                   4, "'flag' must be a boolean", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  flag = 1; };",
                   4, "'flag' must be a boolean", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  bufsize = \"big\"; };",
                   4, "'bufsize' must be a size", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  bufsize = -4096; };",
                   4, "'bufsize' must be a size", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  timeout = true; };",
                   4, "'timeout' must be a duration", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  tags = 5; };",
                   4, "'tags' must be a list of strings", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  tags = ( \"a\", 2 ); };",
                   4, "'tags' must be a list of strings", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  inner = \"x\"; };",
                   4, "'inner' must be a group", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\"; };\n"
                   "layers = ( { layer = \"tlayer\";\n"
                   "  count = \"x\"; } );",
                   5, "a/tlayer", "'count' must be an integer", NULL);
}
END_TEST

START_TEST(settings_missing) {
  settings_refused("source = {\n plugin = \"tgood\"; count = 2; };", 3,
                   "a/tgood", "missing required setting 'path'", NULL);
}
END_TEST

/* create() refusing a value is reported with the instance's name and the
 * plugin's own reason (which names the place with host->where). */
START_TEST(settings_create_refused) {
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\";\n"
                   "  count = -1; };",
                   0, "a/tgood", "test.conf:4", "count must be >= 0", NULL);
}
END_TEST

START_TEST(settings_wrong_plugin) {
  settings_refused("source = {\n plugin = \"tlayer\"; };", 3,
                   "'tlayer' is a layer, not a source", NULL);
  settings_refused("source = { plugin = \"tgood\"; path = \"/x\"; };\n"
                   "layers = (\n { layer = \"tgood\"; path = \"/y\"; } );",
                   5, "'tgood' is a source, not a layer", NULL);
  settings_refused("source = {\n plugin = \"nosuch\"; };", 3,
                   "no plugin 'nosuch'", DIR, NULL);
  settings_refused("source = {\n plugin = \"tmajor\"; };", 3, path_of("tmajor"),
                   "ABI major", NULL);
  settings_refused("source = {\n plugin = \"tplain\"; };", 3, path_of("tplain"),
                   "not a uffdkit plugin", NULL);
}
END_TEST

/* From the command line, values are strings: they parse to the type, or
 * the message names the command line. */
START_TEST(settings_cli) {
  char *good[] = {"path=/x", "count=7", "flag=on", "bufsize=64K",
                  "timeout=10ms"};
  int r =
      conf_from_cli_t(&C, "/tmp/s", "tgood", good, 5, NULL, ERR, sizeof ERR);
  have_conf = 1;
  ck_assert_msg(r == 0, "%s", ERR);
  r = stack_check_t(host_table(), &C, &C.listeners[0], DIR, ERR, sizeof ERR);
  ck_assert_msg(r == 0, "command-line settings refused: %s", ERR);
  teardown();
  const char *bad[][2] = {{"count=seven", "'count' must be an integer"},
                          {"flag=perhaps", "'flag' must be a boolean"},
                          {"colour=red", "unknown setting 'colour'"}};
  for (int i = 0; i < 3; i++) {
    char *kv[] = {"path=/x", (char *)bad[i][0]};
    r = conf_from_cli_t(&C, "/tmp/s", "tgood", kv, 2, NULL, ERR, sizeof ERR);
    have_conf = 1;
    ck_assert_msg(r == 0, "%s", ERR);
    r = stack_check_t(host_table(), &C, &C.listeners[0], DIR, ERR, sizeof ERR);
    ck_assert_msg(r < 0, "'%s' accepted", bad[i][0]);
    ck_assert_msg(strstr(ERR, "command line") && strstr(ERR, bad[i][1]),
                  "'%s': message '%s' must name the command line and say "
                  "'%s'",
                  bad[i][0], ERR, bad[i][1]);
    teardown();
  }
  char *none[] = {"count=1"};
  r = conf_from_cli_t(&C, "/tmp/s", "tgood", none, 1, NULL, ERR, sizeof ERR);
  have_conf = 1;
  ck_assert_msg(r == 0, "%s", ERR);
  r = stack_check_t(host_table(), &C, &C.listeners[0], DIR, ERR, sizeof ERR);
  ck_assert_msg(r < 0 && strstr(ERR, "command line") &&
                    strstr(ERR, "missing required setting 'path'"),
                "missing path from the command line: '%s'", ERR);
}
END_TEST

/* ---- the same errors as struct conf_err ---- */

/* stack_check must refuse `rest` (see load_config) with the error's file
 * test.conf and its line `line`, the message starting with `start`. */
static void refused_at(const char *rest, int line, const char *start) {
  load_config(rest);
  struct conf_err e = {.line = -1};
  int r = stack_check(host_table(), &C, &C.listeners[0], DIR, &e);
  ck_assert_msg(r < 0, "settings accepted, expected a refusal:\n%s", rest);
  ck_assert_msg(!strcmp(e.file, "test.conf") && e.line == line,
                "error at '%s' line %d, expected test.conf line %d: %s", e.file,
                e.line, line, e.msg);
  ck_assert_msg(!strncmp(e.msg, start, strlen(start)),
                "message '%s' does not start with '%s'", e.msg, start);
}

START_TEST(conferr_unknown_setting) {
  refused_at("source = { plugin = \"tgood\"; path = \"/x\";\n"
             "  colour = \"red\"; };",
             4, "a/tgood: unknown setting 'colour'");
  refused_at("source = { plugin = \"tgood\"; path = \"/x\"; };\n"
             "layers = ( { layer = \"tlayer\";\n"
             "\n  cuont = 1; } );",
             6, "a/tlayer: unknown setting 'cuont'");
}
END_TEST

START_TEST(conferr_bad_type) {
  refused_at("source = { plugin = \"tgood\"; path = \"/x\";\n"
             "  count = \"three\"; };",
             4, "a/tgood: 'count' must be an integer");
  refused_at("source = { plugin = \"tgood\"; path = \"/x\";\n\n"
             "  timeout = true; };",
             5, "a/tgood: 'timeout' must be a duration");
  /* A key that is missing is the group's fault. */
  refused_at("source = {\n plugin = \"tgood\"; count = 2; };", 3,
             "a/tgood: missing required setting 'path'");
}
END_TEST

START_TEST(conferr_unknown_plugin) {
  refused_at("\nsource = {\n plugin = \"nosuch\"; };", 4,
             "no plugin 'nosuch' in ");
  struct conf_err e = {.line = -1};
  ck_assert_msg(!plugin_get(DIR, "nosuch", 0, host_table(), &e),
                "nosuch found");
  ck_assert_msg(!e.file[0] && e.line == 0 && strstr(e.msg, DIR),
                "plugin_get: '%s' line %d: %s", e.file, e.line, e.msg);
}
END_TEST

/* The plugin file is named in the message; the place is the setting that
 * asked for it. */
START_TEST(conferr_abi_major) {
  char start[1200];
  snprintf(start, sizeof start,
           "%s: plugin ABI major %d, this daemon speaks %d", path_of("tmajor"),
           UFK_ABI_MAJOR + 1, UFK_ABI_MAJOR);
  refused_at("source = {\n plugin = \"tmajor\"; };", 3, start);
  struct plugin p;
  struct conf_err e = {.line = -1};
  ck_assert_int_lt(plugin_open_file(path_of("tmajor"), &p, &e), 0);
  ck_assert_str_eq(e.file, path_of("tmajor"));
  ck_assert_int_eq(e.line, 0);
  ck_assert_msg(!strncmp(e.msg, "plugin ABI major", 16), "'%s'", e.msg);
}
END_TEST

/* What a plugin says through host->error is carried whole, after the
 * instance's name, at the place of its settings. */
START_TEST(conferr_from_plugin) {
  refused_at("source = { plugin = \"tgood\"; path = \"/x\";\n"
             "  count = -1; };",
             3, "a/tgood: test.conf:4: count must be >= 0");
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-plugin");
  TCase *abi = tcase_create("abi");
  tcase_add_test(abi, good_plugin);
  tcase_add_test(abi, abi_major);
  tcase_add_test(abi, abi_newer_minor);
  tcase_add_test(abi, struct_too_small);
  tcase_add_test(abi, missing_read);
  tcase_add_test(abi, missing_create);
  tcase_add_test(abi, bad_name);
  tcase_add_test(abi, bad_thread_model);
  tcase_add_test(abi, no_entry_symbol);
  tcase_add_test(abi, null_entry);
  tcase_add_test(abi, not_elf);
  tcase_add_test(abi, older_minor);
  tcase_add_test(abi, plugin_get_lookup);
  suite_add_tcase(s, abi);
  TCase *set = tcase_create("settings");
  tcase_add_checked_fixture(set, NULL, teardown);
  tcase_add_test(set, settings_good);
  tcase_add_test(set, settings_unknown);
  tcase_add_test(set, settings_wrong_type);
  tcase_add_test(set, settings_missing);
  tcase_add_test(set, settings_create_refused);
  tcase_add_test(set, settings_wrong_plugin);
  tcase_add_test(set, settings_cli);
  suite_add_tcase(s, set);
  TCase *ce = tcase_create("conferr");
  tcase_add_checked_fixture(ce, NULL, teardown);
  tcase_add_test(ce, conferr_unknown_setting);
  tcase_add_test(ce, conferr_bad_type);
  tcase_add_test(ce, conferr_unknown_plugin);
  tcase_add_test(ce, conferr_abi_major);
  tcase_add_test(ce, conferr_from_plugin);
  suite_add_tcase(s, ce);
  return ufk_check_run(s);
}

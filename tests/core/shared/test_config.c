/* Unit tests of the daemon's configuration: a full config and its defaults,
 * the command-line listener and @include (every kind of error, each naming
 * the file, the line and the key, is in test_config_errors.c). */
#include <check.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkrun.h"
#include "conftest.h"

struct daemon_conf C;
char ERR[2048];
int loaded;

int load(const char *text) {
  ERR[0] = 0;
  if (loaded) conf_free(&C); /* a test may load several texts */
  int r = conf_load_string_t(&C, text, "test.conf", ERR, sizeof ERR);
  loaded = 1;
  return r;
}

void teardown(void) {
  if (loaded) conf_free(&C);
  loaded = 0;
}

void loads(const char *text) {
  int r = load(text);
  ck_assert_msg(r == 0, "config refused: %s\n%s", ERR, text);
}

/* The message must start with "test.conf:LINE: " (LINE 0: any line; -1:
 * "test.conf: ", for a setting that is absent and so has no line) and
 * contain every word. */
void refused(const char *text, int line, ...) {
  int r = load(text);
  ck_assert_msg(r < 0, "config accepted, expected an error:\n%s", text);
  ck_assert_msg(!strchr(ERR, '\n'), "message is not one line: '%s'", ERR);
  if (line < 0) {
    ck_assert_msg(!strncmp(ERR, "test.conf: ", 11),
                  "message '%s' does not start with 'test.conf: '", ERR);
  } else if (line > 0) {
    char want[64];
    snprintf(want, sizeof want, "test.conf:%d: ", line);
    ck_assert_msg(!strncmp(ERR, want, strlen(want)),
                  "message '%s' does not start with '%s'", ERR, want);
  } else {
    regex_t re;
    regcomp(&re, "^test\\.conf:[0-9]+: ", REG_EXTENDED | REG_NOSUB);
    int m = regexec(&re, ERR, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(m == 0,
                  "message '%s' does not start with test.conf:LINE:", ERR);
  }
  va_list ap;
  va_start(ap, line);
  for (const char *w; (w = va_arg(ap, const char *));)
    ck_assert_msg(strstr(ERR, w), "message '%s' does not contain '%s'", ERR, w);
  va_end(ap);
}

START_TEST(full_config) {
  loads("# every setting\n"
        "uffdkit = {\n"
        "  plugin_dir = \"/opt/uffdkit/plugins\";\n"
        "  log_level = \"debug\";\n"
        "  log_format = \"json\";\n"
        "  control_socket = \"/run/uffdkit/ctl.sock\";\n"
        "  metrics = \"127.0.0.1:9100\";\n"
        "  worker_restart_delay = \"250ms\";\n"
        "};\n"
        "listeners = (\n"
        "  {\n"
        "    name = \"vm-a\";\n"
        "    socket = \"/run/uffdkit/a.sock\";\n"
        "    socket_mode = \"0660\";\n"
        "    socket_owner = \"root\";\n"
        "    socket_group = \"kvm\";\n"
        "    allow_uids = ( 0, 1000, 4294967295L );\n"
        "    allow_gids = ( 100 );\n"
        "    max_sessions = 8;\n"
        "    handshake_timeout = \"1500ms\";\n"
        "    max_handshake_bytes = \"128K\";\n"
        "    max_regions = 4;\n"
        "    on_source_error = \"sigbus\";\n"
        "    fault_around = 15;\n"
        "    spin = \"200us\";\n"
        "    background_fill = true;\n"
        "    prefetch = { working_set = \"/var/lib/ws\"; mode = \"record\";\n"
        "                 record_for = \"30s\"; max_gap = 2; };\n"
        "    source = { plugin = \"mmap\"; path = \"/srv/a/mem\"; };\n"
        "    layers = ( { layer = \"cache\"; size = \"4G\"; },\n"
        "               { layer = \"retry\"; } );\n"
        "  },\n"
        "  { name = \"vm-b\"; socket = \"/run/uffdkit/b.sock\";\n"
        "    handshake_timeout = 2; on_source_error = \"hang\"; spin = "
        "\"auto\";\n"
        "    prefetch = { working_set = \"/var/lib/ws-b\"; };\n"
        "    source = { plugin = \"file\"; path = \"/srv/b/mem\"; }; }\n"
        ");\n");
  ck_assert_str_eq(C.plugin_dir, "/opt/uffdkit/plugins");
  ck_assert_int_eq(C.log_level, 3);
  ck_assert_str_eq(C.log_format, "json");
  ck_assert_str_eq(C.control_socket, "/run/uffdkit/ctl.sock");
  ck_assert_str_eq(C.metrics_listen, "127.0.0.1:9100");
  ck_assert_uint_eq(C.worker_restart_delay_ns, 250000000ull);
  ck_assert_int_eq(C.n_listeners, 2);
  const struct listener_conf *a = conf_find_listener(&C, "vm-a");
  ck_assert_msg(a == &C.listeners[0], "vm-a not found as listener 0");
  ck_assert_str_eq(a->socket, "/run/uffdkit/a.sock");
  ck_assert_uint_eq(a->socket_mode, 0660);
  ck_assert_str_eq(a->socket_owner, "root");
  ck_assert_str_eq(a->socket_group, "kvm");
  ck_assert_int_eq(a->n_allow_uids, 3);
  ck_assert_uint_eq(a->allow_uids[0], 0);
  ck_assert_uint_eq(a->allow_uids[1], 1000);
  ck_assert_uint_eq(a->allow_uids[2], 4294967295u);
  ck_assert_int_eq(a->n_allow_gids, 1);
  ck_assert_uint_eq(a->allow_gids[0], 100);
  ck_assert_int_eq(a->max_sessions, 8);
  ck_assert_uint_eq(a->handshake_timeout_ns, 1500000000ull);
  ck_assert_uint_eq(a->max_handshake_bytes, 128 << 10);
  ck_assert_int_eq(a->max_regions, 4);
  ck_assert_int_eq(a->on_source_error, ON_ERROR_SIGBUS);
  ck_assert_int_eq(a->fault_around, 15);
  ck_assert_uint_eq(a->spin_ns, 200000);
  ck_assert_int_eq(a->background_fill, 1);
  ck_assert_str_eq(a->wset_path, "/var/lib/ws");
  ck_assert_int_eq(a->wset_mode, WSET_RECORD);
  ck_assert_uint_eq(a->record_for_ns, 30000000000ull);
  ck_assert_int_eq(a->replay_max_gap, 2);
  const char *plugin = NULL;
  ck_assert_msg(config_setting_lookup_string(a->source, "plugin", &plugin) &&
                    !strcmp(plugin, "mmap"),
                "vm-a source plugin is %s", plugin ? plugin : "(none)");
  ck_assert_msg(a->layers && config_setting_length(a->layers) == 2,
                "vm-a should have 2 layers");
  const struct listener_conf *b = conf_find_listener(&C, "vm-b");
  ck_assert_msg(b == &C.listeners[1], "vm-b not found as listener 1");
  ck_assert_uint_eq(b->handshake_timeout_ns, 2000000000ull); /* bare int: s */
  ck_assert_int_eq(b->on_source_error, ON_ERROR_HANG);
  ck_assert_uint_eq(b->spin_ns, DURATION_AUTO);
  ck_assert_int_eq(b->wset_mode, WSET_AUTO); /* mode's default */
  ck_assert_msg(b->layers == NULL, "vm-b has no layers");
  ck_assert_msg(conf_find_listener(&C, "vm-c") == NULL, "vm-c found");
}
END_TEST

START_TEST(defaults) {
  const char *text = "listeners = ( { name = \"a\"; socket = \"/tmp/a.sock\";\n"
                     "  source = { plugin = \"mmap\"; path = \"/m\"; }; } );\n";
  loads(text);
  ck_assert_msg(C.text && !strcmp(C.text, text),
                "the exact text must be kept for the worker");
  ck_assert_msg(C.plugin_dir == NULL, "plugin_dir has no default");
  ck_assert_int_eq(C.log_level, 2);
  ck_assert_str_eq(C.log_format, "text");
  ck_assert_uint_eq(C.worker_restart_delay_ns, 100000000ull);
  const struct listener_conf *l = &C.listeners[0];
  ck_assert_uint_eq(l->socket_mode, 0600);
  ck_assert_int_eq(l->n_allow_uids, 0);
  ck_assert_int_eq(l->n_allow_gids, 0);
  ck_assert_int_eq(l->max_sessions, 1024);
  ck_assert_uint_eq(l->handshake_timeout_ns, 5000000000ull);
  ck_assert_uint_eq(l->max_handshake_bytes, 64 << 10);
  ck_assert_int_eq(l->max_regions, CONF_MAX_REGIONS);
  ck_assert_int_eq(l->on_source_error, ON_ERROR_KILL);
  ck_assert_int_eq(l->fault_around, 0);
  ck_assert_msg(l->spin_ns == DURATION_AUTO, "spin defaults to auto");
  ck_assert_int_eq(l->background_fill, 0);
  ck_assert_int_eq(l->wset_mode, WSET_OFF);
  ck_assert_msg(l->layers == NULL, "no layers by default");
}
END_TEST

/* Socket modes are octal strings; "660" reads as octal too. */
START_TEST(socket_modes) {
  const char *modes[] = {"0660", "660", "0", "0777", "0600"};
  unsigned want[] = {0660, 0660, 0, 0777, 0600};
  for (int i = 0; i < 5; i++) {
    char text[256];
    snprintf(text, sizeof text,
             "listeners = ( { name = \"a\"; socket = \"/tmp/a\";\n"
             "socket_mode = \"%s\"; source = { plugin = \"m\"; }; } );",
             modes[i]);
    loads(text);
    ck_assert_msg(C.listeners[0].socket_mode == want[i],
                  "socket_mode \"%s\" gave %o, expected %o", modes[i],
                  C.listeners[0].socket_mode, want[i]);
    teardown();
  }
}
END_TEST

START_TEST(from_cli) {
  char *kv[] = {"path=/srv/mem", "populate=false", "odd=a\"b\\c; x = 1",
                "empty="};
  int r = conf_from_cli_t(&C, "/tmp/cli.sock", "mmap", kv, 4, NULL, ERR,
                          sizeof ERR);
  loaded = 1;
  ck_assert_msg(r == 0, "command line refused: %s", ERR);
  ck_assert_int_eq(C.n_listeners, 1);
  const struct listener_conf *l = &C.listeners[0];
  ck_assert_str_eq(l->name, "cli");
  ck_assert_str_eq(l->socket, "/tmp/cli.sock");
  ck_assert_uint_eq(l->socket_mode, 0600);
  const char *v = NULL;
  ck_assert_msg(config_setting_lookup_string(l->source, "plugin", &v) &&
                    !strcmp(v, "mmap"),
                "plugin is %s", v ? v : "(none)");
  ck_assert_msg(config_setting_lookup_string(l->source, "path", &v) &&
                    !strcmp(v, "/srv/mem"),
                "path is %s", v ? v : "(none)");
  ck_assert_msg(config_setting_lookup_string(l->source, "populate", &v) &&
                    !strcmp(v, "false"),
                "populate must stay the string \"false\"");
  /* Quotes, backslashes and ';' stay inside the value. */
  ck_assert_msg(config_setting_lookup_string(l->source, "odd", &v) &&
                    !strcmp(v, "a\"b\\c; x = 1"),
                "odd is '%s'", v ? v : "(none)");
  ck_assert_msg(config_setting_get_member(l->source, "x") == NULL,
                "a value must not add a setting");
  ck_assert_msg(config_setting_lookup_string(l->source, "empty", &v) &&
                    !strcmp(v, ""),
                "empty value lost");
  ck_assert_ptr_null(C.control_socket);
  ck_assert_ptr_null(C.metrics_listen);
  conf_free(&C);
  /* --name, --control-socket (empty: none) and --metrics. */
  struct cli_globals g = {
      .name = "vm-1", .control_socket = "", .metrics = "127.0.0.1:0"};
  r = conf_from_cli_t(&C, "/tmp/cli.sock", "mmap", kv, 1, &g, ERR, sizeof ERR);
  ck_assert_msg(r == 0, "command line refused: %s", ERR);
  ck_assert_str_eq(C.listeners[0].name, "vm-1");
  ck_assert_str_eq(C.control_socket, "");
  ck_assert_str_eq(C.metrics_listen, "127.0.0.1:0");
  conf_free(&C);
  g = (struct cli_globals){.name = "a b", .control_socket = "/tmp/c\"x"};
  r = conf_from_cli_t(&C, "/tmp/cli.sock", "mmap", kv, 1, &g, ERR, sizeof ERR);
  ck_assert_msg(r < 0 && strstr(ERR, "listener name 'a b'"),
                "a bad --name is refused naming it, not: %s", ERR);
}
END_TEST

START_TEST(from_cli_errors) {
  const char *bad[] = {"novalue", "=x", "1path=x", "pa th=x", "path;x=1"};
  for (int i = 0; i < 5; i++) {
    char *kv[] = {"path=/m", (char *)bad[i]};
    ERR[0] = 0;
    int r = conf_from_cli_t(&C, "/tmp/s", "mmap", kv, 2, NULL, ERR, sizeof ERR);
    loaded = 1;
    ck_assert_msg(r < 0, "'%s' accepted", bad[i]);
    ck_assert_msg(strstr(ERR, "command line") && strstr(ERR, bad[i]),
                  "message '%s' must name the command line and '%s'", ERR,
                  bad[i]);
    teardown();
  }
  /* A socket path that would not fit sockaddr_un. */
  char longpath[200];
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = 0;
  char *kv[] = {"path=/m"};
  int r = conf_from_cli_t(&C, longpath, "mmap", kv, 1, NULL, ERR, sizeof ERR);
  loaded = 1;
  ck_assert_msg(r < 0 && strstr(ERR, "command line") &&
                    strstr(ERR, "socket path"),
                "long socket path: %d '%s'", r, ERR);
}
END_TEST

/* Writes text to a new file under dir; returns its path (static). */
static const char *put(const char *dir, const char *name, const char *text) {
  static char path[4][512];
  static int k;
  char *p = path[k++ % 4];
  snprintf(p, sizeof path[0], "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return p;
}

/* @include is resolved once, at load: the text kept has none left, so a
 * worker or an upgrade loading it never reads the file system; settings,
 * and errors, are still named by the included file and its line. */
START_TEST(includes) {
  char dir[] = "/tmp/ufk-conf-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char line[1024];
  const char *src = put(dir, "src.inc",
                        "# the source\nsource = { plugin = \"mmap\";\n"
                        "  path = \"/srv/A\"; };\n");
  snprintf(line, sizeof line,
           "listeners = ( { name = \"a\"; socket = \"/tmp/a\";\n"
           "  @include \"%s\"\n"
           "  spin = \"1ms\"; } );\n",
           src);
  const char *main_path = put(dir, "main.conf", line);
  ck_assert_int_eq(conf_load_file_t(&C, main_path, ERR, sizeof ERR), 0);
  loaded = 1;
  ck_assert_ptr_null(strstr(C.text, "@include"));
  char where[512];
  const config_setting_t *path =
      config_setting_get_member(C.listeners[0].source, "path");
  snprintf(line, sizeof line, "%s:3", src);
  ck_assert_str_eq(conf_where(&C, path, where, sizeof where), line);
  const config_setting_t *spin =
      config_setting_get_member(C.listeners[0].setting, "spin");
  snprintf(line, sizeof line, "%s:3", main_path);
  ck_assert_str_eq(conf_where(&C, spin, where, sizeof where), line);

  /* The included file changed after the load: the kept text is the same. */
  char *kept = strdup(C.text);
  put(dir, "src.inc", "garbage {\n");
  conf_free(&C);
  ck_assert_int_eq(conf_load_string_t(&C, kept, main_path, ERR, sizeof ERR), 0);
  ck_assert_str_eq(C.listeners[0].source->name, "source");
  ck_assert_str_eq(config_setting_get_string(config_setting_get_member(
                       C.listeners[0].source, "path")),
                   "/srv/A");
  free(kept);

  /* A syntax error inside the included file names that file and line. */
  conf_free(&C);
  ck_assert_int_eq(conf_load_file_t(&C, main_path, ERR, sizeof ERR), -1);
  snprintf(line, sizeof line, "%s:1: ", src);
  ck_assert_msg(!strncmp(ERR, line, strlen(line)), "'%s' is not at %s", ERR,
                line);
  /* A missing included file names the including line. */
  conf_free(&C);
  unlink(src);
  ck_assert_int_eq(conf_load_file_t(&C, main_path, ERR, sizeof ERR), -1);
  snprintf(line, sizeof line, "%s:2: %s: No such file or directory", main_path,
           src);
  ck_assert_str_eq(ERR, line);
  unlink(main_path);
  rmdir(dir);
}
END_TEST

/* Adds cases to s, a test case (TCase) per run of equal names. */
void add_cases(Suite *s, const struct conf_case *cases, size_t n) {
  TCase *tc = NULL;
  const char *cur = "";
  for (size_t i = 0; i < n; i++) {
    if (strcmp(cur, cases[i].name)) {
      cur = cases[i].name;
      tc = tcase_create(cur);
      tcase_add_checked_fixture(tc, NULL, teardown);
      suite_add_tcase(s, tc);
    }
    tcase_add_test(tc, cases[i].test);
  }
}

int main(void) {
  Suite *s = suite_create("core-config");
  const struct conf_case good[] = {
      {"good", full_config}, {"good", defaults},       {"good", socket_modes},
      {"cli", from_cli},     {"cli", from_cli_errors},
  };
  add_cases(s, good, sizeof good / sizeof *good);
  add_error_cases(s);
  const struct conf_case includes_[] = {{"includes", includes}};
  add_cases(s, includes_, 1);
  return ufk_check_run(s);
}

/* Unit tests of the configuration's errors: unknown keys, wrong types,
 * missing and bad values, duplicates, ranges, syntax, each naming the file,
 * the line and the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conftest.h"

#define L(x) "listeners = ( { name = \"a\"; socket = \"/tmp/a.sock\";\n" x

START_TEST(unknown_keys) {
  refused("uffdkit = { log_level = \"info\"; };\n"
          "bogus = 1;\n" L("source = { plugin = \"m\"; }; } );"),
          2, "unknown top-level setting 'bogus'", NULL);
  refused("uffdkit = {\n"
          "  plugin_dirs = \"/x\";\n"
          "};\n" L("source = { plugin = \"m\"; }; } );"),
          2, "uffdkit", "unknown setting 'plugin_dirs'", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "sockets = \"/tmp/b\"; } );"),
          3, "listener", "unknown setting 'sockets'", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "prefetch = { working_set = \"/w\";\n"
            "  workingset = \"/w\"; }; } );"),
          4, "prefetch", "unknown setting 'workingset'", NULL);
}
END_TEST

/* Values of the wrong type written as strings or groups. */
START_TEST(wrong_types) {
  refused(L("source = { plugin = \"m\"; };\nmax_sessions = \"many\"; } );"), 3,
          "'max_sessions' must be an integer", NULL);
  refused(
      L("source = { plugin = \"m\"; };\nhandshake_timeout = \"soon\"; } );"), 3,
      "'handshake_timeout' must be a duration", NULL);
  refused(L("source = { plugin = \"m\"; };\nhandshake_timeout = -1; } );"), 3,
          "'handshake_timeout' must be a duration", NULL);
  refused(
      L("source = { plugin = \"m\"; };\nmax_handshake_bytes = \"big\"; } );"),
      3, "'max_handshake_bytes' must be a size", NULL);
  refused(
      L("source = { plugin = \"m\"; };\nbackground_fill = \"perhaps\"; } );"),
      3, "'background_fill' must be a boolean", NULL);
  refused(L("source = { plugin = \"m\"; };\nsocket_owner = 0; } );"), 3,
          "'socket_owner' must be a string", NULL);
  refused(L("source = { plugin = \"m\"; };\nallow_uids = \"root\"; } );"), 3,
          "'allow_uids' must be an array of integer ids", NULL);
  refused(L("source = { plugin = \"m\"; };\nallow_uids = [ -1 ]; } );"), 3,
          "'allow_uids'", NULL);
  refused(L("source = { plugin = \"m\"; };\nallow_gids = ( \"wheel\" ); } );"),
          3, "'allow_gids'", NULL);
  refused(
      L("source = { plugin = \"m\"; };\nallow_uids = ( 4294967296L ); } );"), 3,
      "'allow_uids'", NULL);
  refused(L("source = \"mmap\"; } );"), 2, "'source' must be a group", NULL);
  refused(L("source = { plugin = \"m\"; };\nlayers = \"cache\"; } );"), 3,
          "'layers' must be a list", NULL);
  refused(L("source = { plugin = \"m\"; };\nprefetch = \"/w\"; } );"), 3,
          "'prefetch' must be a group", NULL);
  refused(L("source = { plugin = \"m\"; };\nprefetch = {\n"
            "  record_for = \"a while\"; }; } );"),
          4, "'record_for' must be a duration", NULL);
  refused(L("source = { plugin = \"m\"; };\nprefetch = { working_set = "
            "\"/w\";\n  max_gap = 65; }; } );"),
          4, "max_gap must be 0..64 pages", NULL);
  refused("listeners = ( { name = 5;\n"
          "  socket = \"/tmp/a\"; source = { plugin = \"m\"; }; } );",
          1, "'name' must be a string", NULL);
  refused("listeners = ( { name = \"a\";\n"
          "  socket = 1; source = { plugin = \"m\"; }; } );",
          2, "'socket' must be a string", NULL);
  refused("uffdkit = {\n"
          "  worker_restart_delay = \"never\"; };\n" L(
              "source = { plugin = \"m\"; }; } );"),
          2, "'worker_restart_delay' must be a duration", NULL);
  refused("uffdkit = \"x\";\n" L("source = { plugin = \"m\"; }; } );"), 1,
          "'uffdkit' must be a group", NULL);
  refused("listeners = { a = 1; };", 1, "'listeners' must be a list", NULL);
}
END_TEST

/* Values of the wrong type written natively (a boolean, an integer, a
 * float where another type is due) must be refused like the same mistake
 * written as a string, never replaced by the default. */
START_TEST(native_wrong_types) {
  struct {
    const char *setting;
    const char *key;
  } t[] = {
      {"max_sessions = true;", "max_sessions"},
      {"max_regions = 2.5;", "max_regions"},
      {"fault_around = 1.0;", "fault_around"},
      {"background_fill = 3;", "background_fill"},
      {"handshake_timeout = 1.5;", "handshake_timeout"},
      {"handshake_timeout = true;", "handshake_timeout"},
      {"max_handshake_bytes = false;", "max_handshake_bytes"},
      {"max_handshake_bytes = [ 1 ];", "max_handshake_bytes"},
  };
  int failed = 0;
  char first[4096] = "";
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char text[512];
    snprintf(text, sizeof text, L("source = { plugin = \"m\"; };\n%s } );"),
             t[i].setting);
    int r = load(text);
    char want[64];
    snprintf(want, sizeof want, "'%s' must be", t[i].key);
    int ok = r < 0 && !strncmp(ERR, "test.conf:3: ", 13) && strstr(ERR, want);
    if (!ok) {
      fprintf(stderr, "'%s': %s\n", t[i].setting,
              r < 0 ? ERR : "accepted (the default was used)");
      if (!failed++)
        snprintf(first, sizeof first, "'%s' %s", t[i].setting,
                 r < 0 ? ERR : "was accepted and the default used");
    }
    teardown();
  }
  char gtext[256];
  snprintf(gtext, sizeof gtext,
           "uffdkit = {\n  worker_restart_delay = true; };\n" L(
               "source = { plugin = \"m\"; }; } );"));
  int r = load(gtext);
  if (r == 0 || !strstr(ERR, "'worker_restart_delay' must be")) {
    fprintf(stderr, "'worker_restart_delay = true;': %s\n",
            r < 0 ? ERR : "accepted (the default was used)");
    if (!failed++)
      snprintf(first, sizeof first, "'worker_restart_delay = true' %s",
               r < 0 ? ERR : "was accepted and the default used");
  }
  ck_assert_msg(!failed,
                "%d wrong-typed settings were not refused (core/config.c "
                "store_value() falls back to parsing the default text when a "
                "native value has the wrong type); first: %s",
                failed, first);
}
END_TEST

START_TEST(missing) {
  refused("listeners = (\n"
          "  { socket = \"/tmp/a\"; source = { plugin = \"m\"; }; } );",
          2, "missing required setting 'name'", NULL);
  refused("listeners = (\n"
          "  { name = \"a\"; source = { plugin = \"m\"; }; } );",
          2, "missing required setting 'socket'", NULL);
  refused("listeners = (\n"
          "  { name = \"a\"; socket = \"/tmp/a\"; } );",
          2, "missing required setting 'source'", NULL);
  refused(L("source = {\n"
            "  path = \"/m\"; }; } );"),
          2, "source needs plugin", NULL);
  refused(L("source = { plugin = 7; }; } );"), 2, "source needs plugin", NULL);
  refused("uffdkit = { log_level = \"info\"; };", -1, "needs listeners", NULL);
  refused("listeners = ( );", -1, "needs listeners", NULL);
  /* Found by fuzz-config: an empty list of templates served nothing. */
  refused("templates = ( );", -1, "or templates = (", NULL);
  refused("listeners = ( ); templates = ( );", -1, "needs listeners", NULL);
}
END_TEST

/* Values of the right type that mean nothing.  The line may be the
 * listener's or the key's; the key must be named. */
START_TEST(bad_values) {
  refused(L("socket_mode = 660;\n source = { plugin = \"m\"; }; } );"), 2,
          "'socket_mode' must be a string", NULL);
  const char *modes[] = {"999", "abc", "", "01777", "-1", "0x1a4", "6 6 0"};
  for (int i = 0; i < 7; i++) {
    char text[256];
    snprintf(text, sizeof text,
             L("socket_mode = \"%s\";\n source = { plugin = \"m\"; }; } );"),
             modes[i]);
    char word[64];
    snprintf(word, sizeof word, "socket_mode '%s'", modes[i]);
    refused(text, 0, word, "octal", NULL);
    teardown();
  }
  refused(L("on_source_error = \"explode\";\n"
            "source = { plugin = \"m\"; }; } );"),
          0, "on_source_error", NULL);
  refused(L("on_source_error = \"KILL\";\n"
            "source = { plugin = \"m\"; }; } );"),
          0, "on_source_error", NULL);
  refused(L("max_regions = 65;\nsource = { plugin = \"m\"; }; } );"), 0,
          "max_regions", NULL);
  refused(L("max_regions = 0;\nsource = { plugin = \"m\"; }; } );"), 0,
          "max_regions", NULL);
  refused(L("max_sessions = 0;\nsource = { plugin = \"m\"; }; } );"), 0,
          "max_sessions", NULL);
  refused(
      L("max_handshake_bytes = \"1K\";\nsource = { plugin = \"m\"; }; } );"), 0,
      "max_handshake_bytes", NULL);
  refused(
      L("max_handshake_bytes = \"32M\";\nsource = { plugin = \"m\"; }; } );"),
      0, "max_handshake_bytes", NULL);
  refused(L("fault_around = 513;\nsource = { plugin = \"m\"; }; } );"), 0,
          "fault_around", NULL);
  refused(L("spin = \"11ms\";\nsource = { plugin = \"m\"; }; } );"), 0,
          "spin must be \"auto\" or 0 to 10ms", NULL);
  refused(L("spin = \"sometimes\";\nsource = { plugin = \"m\"; }; } );"), 0,
          "'spin' must be a duration or \"auto\"", NULL);
  refused(L("prefetch = { working_set = \"/w\"; mode = \"sometimes\"; };\n"
            "source = { plugin = \"m\"; }; } );"),
          0, "prefetch mode", NULL);
  refused("listeners = ( { name = \"a b\"; socket = \"/tmp/a\";\n"
          "source = { plugin = \"m\"; }; } );",
          1, "listener name 'a b'", NULL);
  refused("listeners = ( { name = \"\"; socket = \"/tmp/a\";\n"
          "source = { plugin = \"m\"; }; } );",
          1, "listener name ''", NULL);
  refused("listeners = ( { name = \"a\"; socket = \"\";\n"
          "source = { plugin = \"m\"; }; } );",
          1, "socket path", NULL);
  refused("uffdkit = {\n log_level = \"loud\"; };\n" L(
              "source = { plugin = \"m\"; }; } );"),
          0, "log_level 'loud'", NULL);
  refused("uffdkit = {\n log_format = \"xml\"; };\n" L(
              "source = { plugin = \"m\"; }; } );"),
          0, "log_format", NULL);
}
END_TEST

/* A value error points at the line of the offending key, not at the
 * first line of its listener (the listener may be long). */
START_TEST(value_error_lines) {
  struct {
    const char *setting;
    const char *key;
  } t[] = {
      {"socket_mode = \"999\";", "socket_mode"},
      {"on_source_error = \"explode\";", "on_source_error"},
      {"max_regions = 65;", "max_regions"},
      {"fault_around = 513;", "fault_around"},
      {"max_handshake_bytes = \"1K\";", "max_handshake_bytes"},
  };
  int failed = 0;
  char first[4096] = "";
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char text[512];
    snprintf(text, sizeof text,
             "listeners = (\n"
             "  {\n"
             "    name = \"a\";\n"
             "    socket = \"/tmp/a.sock\";\n"
             "    source = { plugin = \"m\"; };\n"
             "    %s\n"
             "  } );\n",
             t[i].setting);
    int r = load(text);
    if (r == 0 || strncmp(ERR, "test.conf:6: ", 13) || !strstr(ERR, t[i].key)) {
      fprintf(stderr, "'%s': %s\n", t[i].setting, r < 0 ? ERR : "accepted");
      if (!failed++)
        snprintf(first, sizeof first, "'%s' gave '%s'", t[i].setting,
                 r < 0 ? ERR : "no error");
    }
    teardown();
  }
  ck_assert_msg(!failed,
                "%d value errors do not name line 6, where the key is "
                "(core/config.c check_listener() reports the listener's "
                "group); first: %s",
                failed, first);
}
END_TEST

START_TEST(duplicates) {
  refused(
      "listeners = (\n"
      "  { name = \"a\"; socket = \"/tmp/a\"; source = { plugin = \"m\"; }; "
      "},\n"
      "  { name = \"b\"; socket = \"/tmp/b\"; source = { plugin = \"m\"; }; "
      "},\n"
      "  { name = \"a\"; socket = \"/tmp/c\"; source = { plugin = \"m\"; }; }\n"
      ");",
      4, "listener name 'a' used twice", NULL);
  refused(
      "listeners = (\n"
      "  { name = \"a\"; socket = \"/tmp/a\"; source = { plugin = \"m\"; }; "
      "},\n"
      "  { name = \"b\"; socket = \"/tmp/a\"; source = { plugin = \"m\"; }; }\n"
      ");",
      3, "socket '/tmp/a' is the same path as listener 'a''s '/tmp/a'", NULL);
  /* Two spellings of one path are one socket. */
  refused("listeners = (\n"
          "  { name = \"a\"; socket = \"run/x.sock\"; source = { plugin = "
          "\"m\"; }; },\n"
          "  { name = \"b\";\n socket = \"run/../run/./x.sock\"; source = { "
          "plugin = \"m\"; }; }\n"
          ");",
          4, "socket 'run/../run/./x.sock' is the same path as listener 'a''s",
          NULL);
  refused("listeners = (\n"
          "  { name = \"a\"; socket = \"/tmp//y.sock\"; source = { plugin = "
          "\"m\"; }; },\n"
          "  { name = \"b\"; socket = \"/tmp/../tmp/y.sock\"; source = { "
          "plugin = \"m\"; }; }\n"
          ");",
          3, "is the same path as listener 'a''s '/tmp//y.sock'", NULL);
  /* The same key twice in one group is a libconfig error with its line. */
  refused(L("source = { plugin = \"m\"; };\n"
            "name = \"b\"; } );"),
          3, NULL);
}
END_TEST

/* Values past what the setting can mean, named with key and line. */
START_TEST(ranges) {
  /* 18446744074 s is past 2^64 ns: it must not wrap to 0.29 s. */
  refused(L("source = { plugin = \"m\"; };\n"
            "handshake_timeout = 18446744074L; } );"),
          3, "'handshake_timeout' = 18446744074 is out of range", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "handshake_timeout = 0; } );"),
          3, "handshake_timeout must be 1ms to 1h", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "handshake_timeout = \"0s\"; } );"),
          3, "handshake_timeout must be 1ms to 1h", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "handshake_timeout = \"2h\"; } );"),
          3, "handshake_timeout must be 1ms to 1h", NULL);
  loads(L("source = { plugin = \"m\"; };\n"
          "handshake_timeout = 3600; } );"));
  ck_assert_uint_eq(C.listeners[0].handshake_timeout_ns, 3600000000000ull);
}
END_TEST

/* A syntax error inside an @include'd file is reported at that file's
 * line, not at the @include. */
START_TEST(include_errors) {
  char dir[] = "/tmp/uffdkit-conf.XXXXXX", main_[512], inc[512];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(main_, sizeof main_, "%s/main.conf", dir);
  snprintf(inc, sizeof inc, "%s/listeners.conf", dir);
  FILE *f = fopen(inc, "w");
  fputs("listeners = (\n  { name = \"a\";\n    socket = ; } );\n", f);
  fclose(f);
  f = fopen(main_, "w");
  fprintf(f, "# one line\n@include \"%s\"\n", inc);
  fclose(f);
  if (loaded) conf_free(&C);
  ERR[0] = 0;
  int r = conf_load_file_t(&C, main_, ERR, sizeof ERR);
  loaded = 1;
  char want[600];
  snprintf(want, sizeof want, "%s:3: syntax error", inc);
  unlink(inc);
  unlink(main_);
  rmdir(dir);
  ck_assert_msg(r < 0 && !strncmp(ERR, want, strlen(want)),
                "message '%s' does not start with '%s'", ERR, want);
}
END_TEST

START_TEST(layers_not_groups) {
  refused(L("source = { plugin = \"m\"; };\n"
            "layers = ( \"cache\" ); } );"),
          3, "each layer must be a group", "layer", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "layers = ( { layer = \"cache\"; },\n"
            "  { size = \"4G\"; } ); } );"),
          4, "each layer must be a group with layer = \"NAME\"", NULL);
  refused(L("source = { plugin = \"m\"; };\n"
            "layers = ( {\n layer = 5; } ); } );"),
          3, "each layer must be a group", NULL);
  refused("listeners = (\n \"a\" );", 2, "each listener must be a group", NULL);
}
END_TEST

START_TEST(syntax) {
  /* Two listeners without the comma between them. */
  refused(
      "listeners = (\n"
      "  { name = \"a\"; socket = \"/tmp/a\"; source = { plugin = \"m\"; }; }\n"
      "  { name = \"b\"; socket = \"/tmp/b\"; source = { plugin = \"m\"; }; }\n"
      ");",
      3, "syntax error", NULL);
  refused("listeners = (\n { name = ; } );", 2, "syntax error", NULL);
}
END_TEST

void add_error_cases(Suite *s) {
  const struct conf_case cases[] = {
      {"errors", unknown_keys},
      {"errors", wrong_types},
      {"errors", missing},
      {"errors", bad_values},
      {"errors", duplicates},
      {"errors", layers_not_groups},
      {"errors", syntax},
      {"ranges", ranges},
      {"ranges", include_errors},
      {"native_types", native_wrong_types},
      {"value_lines", value_error_lines},
  };
  add_cases(s, cases, sizeof cases / sizeof *cases);
}

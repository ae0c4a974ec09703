/* uffdkit: serves the memory of Firecracker microVMs restored from
 * snapshots through userfaultfd. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkconf.h"
#include "config.h"
#include "control.h"
#include "ctl.h"
#include "host.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "selfexe.h"
#include "stack.h"
#include "supervisor.h"
#include "worker.h"

#ifndef UFFDKIT_VERSION
#define UFFDKIT_VERSION "0"
#endif

static void usage(FILE *f) {
  fprintf(f,
          "Usage:\n"
          "  uffdkit --config FILE            run the daemon from a config "
          "file\n"
          "  uffdkit --socket PATH PLUGIN [KEY=VALUE...]\n"
          "                                   run one listener, no config "
          "file\n"
          "  uffdkit --check-config FILE      check a config file and its "
          "plugins' settings\n"
          "  uffdkit --list-plugins [--json]  list installed plugins\n"
          "  uffdkit --describe PLUGIN        ABI, concurrency and settings "
          "of a plugin\n"
          "  uffdkit ctl [--socket PATH] [--json] COMMAND\n"
          "                                   query or command a running "
          "daemon (uffdkit-ctl(8))\n"
          "  uffdkit --version | --help\n"
          "Options:\n"
          "  --plugin-dir DIR        also look for plugins in DIR, after %s\n"
          "                          (may be given more than once)\n"
          "  --log-level LEVEL       error, warn, info (default) or debug\n"
          "  --log-format FORMAT     text (default) or json\n"
          "  --exit-when-idle        exit once a session has ended and no\n"
          "                          other is live or in its handshake\n"
          "With --socket:\n"
          "  --name NAME             the listener's name (default: cli)\n"
          "  --control-socket PATH   the control socket (default: %s;\n"
          "                          \"\" or none: no control socket)\n"
          "  --metrics ADDR          serve Prometheus metrics on ADDR\n"
          "                          (PORT, HOST:PORT or [IPV6]:PORT)\n"
          "The daemon runs in the foreground and logs to stderr; SIGTERM or "
          "SIGINT stop it.\n"
          "See uffdkit(8) and uffdkit.conf(5).\n",
          plugin_default_dir(), CONTROL_DEFAULT_SOCKET);
}

struct cli {
  const char *config, *socket, *check, *describe, *plugin_dir;
  const char *log_level, *log_format;
  struct cli_globals globals;
  int list, json, exit_when_idle;
  char dirs[4096]; /* every --plugin-dir, colon-separated */
};

/* Each --plugin-dir adds to the search path, in the order given.  NULL,
 * or why dir cannot be added (reported once the log format is known). */
static const char *add_plugin_dir(struct cli *c, const char *dir) {
  size_t n = strlen(c->dirs);
  if (!*dir) return "empty";
  if (strchr(dir, ':'))
    return "a directory name must not contain ':' (give the option once per "
           "directory)";
  if (n + strlen(dir) + 2 > sizeof c->dirs) return "too many directories";
  snprintf(c->dirs + n, sizeof c->dirs - n, "%s%s", n ? ":" : "", dir);
  c->plugin_dir = c->dirs;
  return NULL;
}

static int parse_cli(int argc, char **argv, struct cli *c) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"socket", required_argument, NULL, 's'},
      {"check-config", required_argument, NULL, 'C'},
      {"list-plugins", no_argument, NULL, 'L'},
      {"describe", required_argument, NULL, 'D'},
      {"plugin-dir", required_argument, NULL, 'P'},
      {"log-level", required_argument, NULL, 'l'},
      {"log-format", required_argument, NULL, 'f'},
      {"json", no_argument, NULL, 'j'},
      {"name", required_argument, NULL, 'n'},
      {"control-socket", required_argument, NULL, 'S'},
      {"metrics", required_argument, NULL, 'M'},
      {"exit-when-idle", no_argument, NULL, 'x'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  const char *bad = NULL, *dir_err = NULL, *bad_dir = NULL;
  opterr = 0; /* reported below, through the logger */
  while ((opt = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      c->config = optarg;
      break;
    case 's':
      c->socket = optarg;
      break;
    case 'C':
      c->check = optarg;
      break;
    case 'L':
      c->list = 1;
      break;
    case 'D':
      c->describe = optarg;
      break;
    case 'P':
      if (!dir_err && (dir_err = add_plugin_dir(c, optarg))) bad_dir = optarg;
      break;
    case 'l':
      c->log_level = optarg;
      break;
    case 'f':
      c->log_format = optarg;
      break;
    case 'j':
      c->json = 1;
      break;
    case 'n':
      c->globals.name = optarg;
      break;
    case 'S':
      c->globals.control_socket = strcmp(optarg, "none") ? optarg : "";
      break;
    case 'M':
      c->globals.metrics = optarg;
      break;
    case 'x':
      c->exit_when_idle = 1;
      break;
    case 'V':
      printf("uffdkit %s (plugin ABI %d.%d)\n", UFFDKIT_VERSION, UFK_ABI_MAJOR,
             UFK_ABI_MINOR);
      exit(0);
    case 'h':
      usage(stdout);
      exit(0);
    default:
      if (!bad) bad = argv[optind - 1];
    }
  }
  /* Known before anything is reported, so every line of a run with
   * --log-format json is JSON, its command-line errors too. */
  log_set_json(c->log_format && !strcmp(c->log_format, "json"));
  if (bad) {
    log_error("%s: unknown option or missing value (see uffdkit --help)", bad);
    return -1;
  }
  if (dir_err) {
    log_error("--plugin-dir '%s': %s", bad_dir, dir_err);
    return -1;
  }
  if (c->log_level && log_level_from_name(c->log_level) < 0) {
    log_error("--log-level must be error, warn, info or debug");
    return -1;
  }
  if (c->log_format && strcmp(c->log_format, "text") &&
      strcmp(c->log_format, "json")) {
    log_error("--log-format must be text or json");
    return -1;
  }
  const struct cli_globals *g = &c->globals;
  if (!c->socket && (g->name || g->control_socket || g->metrics)) {
    log_error("--name, --control-socket and --metrics go with --socket (with "
              "--config, the file sets them)");
    return -1;
  }
  return 0;
}

static int load_conf(const struct cli *c, int argc, char **argv,
                     struct daemon_conf *conf) {
  struct conf_err err;
  int r;
  if (c->socket) {
    if (optind >= argc) {
      log_error("--socket PATH needs a PLUGIN name after it");
      return -1;
    }
    r = conf_from_cli(conf, c->socket, argv[optind], argv + optind + 1,
                      argc - optind - 1, &c->globals, &err);
  } else {
    r = conf_load_file(conf, c->config ? c->config : c->check, &err);
  }
  if (r < 0) {
    log_error("%s", conf_err_str(&err));
    conf_free(conf);
    return -1;
  }
  if (c->plugin_dir) conf->plugin_dir = c->plugin_dir;
  return 0;
}

/* The log format a daemon runs with, for the process an upgrade execs:
 * if the file no longer loads, its first lines still come out in it. */
#define LOG_FORMAT_ENV "UFFDKIT_LOG_FORMAT"

/* Whether this process was exec'd by a running daemon for an upgrade. */
static int upgrading(void) {
  const char *pid = getenv("UFFDKIT_FDS_PID");
  return pid && atol(pid) == (long)getpid();
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--worker")) return worker_main(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "ctl")) return ctl_main(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "--handover-version")) {
    puts(HANDOVER_VERSION); /* asked by a supervisor before it upgrades */
    return 0;
  }
  struct cli c = {0};
  if (parse_cli(argc, argv, &c) < 0) return 2;
  const char *dir = c.plugin_dir;
  if (c.list) return plugin_list(dir, c.json);
  if (c.describe) return plugin_describe(dir, c.describe);
  if (!c.config && !c.socket && !c.check) {
    if (c.log_format && !strcmp(c.log_format, "json"))
      log_error("give --config, --socket or --check-config (see uffdkit "
                "--help)");
    else
      usage(stderr);
    return 2;
  }
  if ((c.config != NULL) + (c.socket != NULL) + (c.check != NULL) > 1) {
    log_error("use one of --config, --socket, --check-config");
    return 2;
  }
  if (!c.log_format && !c.check && upgrading() && getenv(LOG_FORMAT_ENV))
    log_set_json(!strcmp(getenv(LOG_FORMAT_ENV), "json"));
  struct daemon_conf *conf = malloc(sizeof *conf);
  if (load_conf(&c, argc, argv, conf) < 0) {
    /* Re-executed for an upgrade: the previous process hands over the
     * configuration it served, so a since-broken file loses no VM. */
    free(conf);
    conf = NULL;
    if (c.check || !upgrading()) return 2;
    log_warn("carrying on with the configuration handed over");
  }
  if (c.check) {
    int r = check_config(conf, conf->plugin_dir ? conf->plugin_dir : dir);
    free(conf);
    return r;
  }
  log_set_level(c.log_level ? log_level_from_name(c.log_level)
                : conf      ? conf->log_level
                            : LOG_INFO);
  const char *format = c.log_format ? c.log_format
                       : conf       ? conf->log_format
                       : getenv(LOG_FORMAT_ENV) && upgrading()
                           ? getenv(LOG_FORMAT_ENV)
                           : "text";
  log_set_json(!strcmp(format, "json"));
  setenv(LOG_FORMAT_ENV, format, 1);
  struct supervisor_opts o = {.log_level = c.log_level,
                              .log_format = c.log_format,
                              .plugin_dir = c.plugin_dir,
                              .config_path = c.config,
                              .exit_when_idle = c.exit_when_idle,
                              .argv = argv};
  return supervisor_run(conf, &o);
}

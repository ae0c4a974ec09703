/* uffdkit: serves the memory of Firecracker microVMs restored from
 * snapshots through userfaultfd. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
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
          "The daemon runs in the foreground and logs to stderr; SIGTERM or "
          "SIGINT stop it.\n"
          "See uffdkit(8) and uffdkit.conf(5).\n",
          plugin_default_dir());
}

struct cli {
  const char *config, *socket, *check, *describe, *plugin_dir;
  const char *log_level, *log_format;
  int list, json;
  char dirs[4096]; /* every --plugin-dir, colon-separated */
};

/* Each --plugin-dir adds to the search path, in the order given. */
static int add_plugin_dir(struct cli *c, const char *dir) {
  size_t n = strlen(c->dirs);
  if (!*dir || strchr(dir, ':') || n + strlen(dir) + 2 > sizeof c->dirs) {
    fprintf(stderr, "uffdkit: --plugin-dir '%s': %s\n", dir,
            *dir ? "a directory name must not contain ':' (give the option "
                   "once per directory)"
                 : "empty");
    return -1;
  }
  snprintf(c->dirs + n, sizeof c->dirs - n, "%s%s", n ? ":" : "", dir);
  c->plugin_dir = c->dirs;
  return 0;
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
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int opt;
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
      if (add_plugin_dir(c, optarg) < 0) return -1;
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
    case 'V':
      printf("uffdkit %s (plugin ABI %d.%d)\n", UFFDKIT_VERSION, UFK_ABI_MAJOR,
             UFK_ABI_MINOR);
      exit(0);
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (c->log_level && log_level_from_name(c->log_level) < 0) {
    fprintf(stderr,
            "uffdkit: --log-level must be error, warn, info or debug\n");
    return -1;
  }
  if (c->log_format && strcmp(c->log_format, "text") &&
      strcmp(c->log_format, "json")) {
    fprintf(stderr, "uffdkit: --log-format must be text or json\n");
    return -1;
  }
  return 0;
}

static int check_config(struct daemon_conf *conf, const char *dir) {
  int bad = 0;
  struct sockaddr_storage ss;
  socklen_t sl;
  char merr[512];
  if (conf->metrics_listen &&
      metrics_parse_listen(conf->metrics_listen, &ss, &sl, merr, sizeof merr) <
          0) {
    fprintf(stderr, "uffdkit: %s: metrics: %s\n", conf->file, merr);
    bad = 1;
  }
  for (int i = 0; i < conf->n_listeners; i++) {
    char err[2048];
    if (stack_check(conf, &conf->listeners[i], dir, err, sizeof err) < 0) {
      fprintf(stderr, "uffdkit: %s\n", err);
      bad = 1;
    }
  }
  plugin_unload_all();
  if (!bad)
    printf("%s: OK (%d listener%s)\n", conf->file, conf->n_listeners,
           conf->n_listeners == 1 ? "" : "s");
  conf_free(conf);
  return bad;
}

static int load_conf(const struct cli *c, int argc, char **argv,
                     struct daemon_conf *conf) {
  char err[2048];
  int r;
  if (c->socket) {
    if (optind >= argc) {
      fprintf(stderr, "uffdkit: --socket PATH needs a PLUGIN name after it\n");
      return -1;
    }
    r = conf_from_cli(conf, c->socket, argv[optind], argv + optind + 1,
                      argc - optind - 1, err, sizeof err);
  } else {
    r = conf_load_file(conf, c->config ? c->config : c->check, err, sizeof err);
  }
  if (r < 0) {
    fprintf(stderr, "uffdkit: %s\n", err);
    conf_free(conf);
    return -1;
  }
  if (c->plugin_dir) conf->plugin_dir = c->plugin_dir;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--worker")) return worker_main(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "ctl")) return ctl_main(argc, argv);
  struct cli c = {0};
  if (parse_cli(argc, argv, &c) < 0) return 2;
  const char *dir = c.plugin_dir;
  if (c.list) return plugin_list(dir, c.json);
  if (c.describe) return plugin_describe(dir, c.describe);
  if (!c.config && !c.socket && !c.check) {
    usage(stderr);
    return 2;
  }
  if ((c.config != NULL) + (c.socket != NULL) + (c.check != NULL) > 1) {
    fprintf(stderr, "uffdkit: use one of --config, --socket, --check-config\n");
    return 2;
  }
  struct daemon_conf *conf = malloc(sizeof *conf);
  if (load_conf(&c, argc, argv, conf) < 0) {
    /* Re-executed for an upgrade: the previous process hands over the
     * configuration it served, so a since-broken file loses no VM. */
    const char *pid = getenv("UFFDKIT_FDS_PID");
    free(conf);
    conf = NULL;
    if (c.check || !pid || atol(pid) != (long)getpid()) return 2;
    fprintf(stderr, "uffdkit: carrying on with the configuration handed "
                    "over\n");
  }
  if (c.check) {
    int r = check_config(conf, conf->plugin_dir ? conf->plugin_dir : dir);
    free(conf);
    return r;
  }
  log_set_level(c.log_level ? log_level_from_name(c.log_level)
                : conf      ? conf->log_level
                            : LOG_INFO);
  log_set_json(!strcmp(c.log_format ? c.log_format
                       : conf       ? conf->log_format
                                    : "text",
                       "json"));
  struct supervisor_opts o = {.log_level = c.log_level,
                              .log_format = c.log_format,
                              .plugin_dir = c.plugin_dir,
                              .config_path = c.config,
                              .argv = argv};
  return supervisor_run(conf, &o);
}

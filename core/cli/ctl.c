#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "ctlserve.h"

#define CTL_MAX_RESPONSE (256u << 20)

static void usage(FILE *f) {
  fprintf(f,
          "Usage: uffdkit ctl [OPTIONS] COMMAND\n"
          "Commands:\n"
          "  list               listeners, and live sessions with their "
          "pid and fault rate\n"
          "  stats              counters of every listener and of its "
          "source and layers\n"
          "  metrics            the Prometheus text exposition\n"
          "  reload             reload the configuration\n"
          "  drain LISTENER     stop accepting on LISTENER; live sessions "
          "go on\n"
          "  serve TEMPLATE [VAR=VALUE...]\n"
          "                     make a per-restore listener; prints its id "
          "and socket\n"
          "  stop ID            close a per-restore listener (its VMs are "
          "killed unless\n"
          "                     --keep-sessions)\n"
          "  watch [ID]         print the events of per-restore listeners\n"
          "Options:\n"
          "  -s, --socket PATH  the daemon's control socket (default: "
          "$UFFDKIT_CONTROL_SOCKET,\n"
          "                     else %s)\n"
          "  -c, --config FILE  use the control_socket set in the "
          "daemon's config FILE\n"
          "  -j, --json         print the daemon's JSON response as is\n"
          "  -t, --timeout SEC  wait at most SEC seconds for the answer "
          "(default 10)\n"
          "  -h, --help         this help\n"
          "serve options: --wait-ready (until a VM's handshake is "
          "accepted), --id ID,\n"
          "  --expiry SEC, --no-one-shot, --uid UID; stop option: "
          "--keep-sessions\n"
          "Exit status: 0 done, 1 the daemon answered with an error, 2 "
          "usage, 3 no daemon or no answer.\n"
          "See uffdkit-ctl(8).\n",
          CONTROL_DEFAULT_SOCKET);
}

static void complain(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("uffdkit ctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- talking to the daemon ---- */

int ctl_connect(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    complain("%s: path longer than %zu bytes", path, sizeof a.sun_path - 1);
    return -1;
  }
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    complain("socket: %s", strerror(errno));
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
  int e = errno;
  close(fd);
  if (e == ENOENT)
    complain("cannot connect to %s: no such socket; is the daemon running, "
             "with uffdkit.control_socket set to this path? (--socket "
             "chooses another)",
             path);
  else if (e == ECONNREFUSED)
    complain("cannot connect to %s: nothing listens on it; the daemon is "
             "not running",
             path);
  else if (e == EACCES || e == EPERM)
    complain("cannot connect to %s: permission denied; run as root or as "
             "the daemon's user",
             path);
  else
    complain("cannot connect to %s: %s", path, strerror(e));
  return -1;
}

int ctl_send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One response line (without its newline), malloc'd; NULL after a
 * message. */
static char *read_line(int fd, const char *path, int timeout_ms) {
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  uint64_t end = clock_mono_ns() / 1000000 + (uint64_t)timeout_ms;
  while (buf) {
    char *nl = memchr(buf, '\n', len);
    if (nl) {
      *nl = 0;
      return buf;
    }
    uint64_t now = clock_mono_ns() / 1000000;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = now >= end ? 0 : poll(&p, 1, (int)(end - now));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      complain("no answer from the daemon on %s within %d s", path,
               timeout_ms / 1000);
      break;
    }
    if (len + 4096 > cap) {
      if (cap >= CTL_MAX_RESPONSE) {
        complain("answer from %s longer than %u bytes", path, CTL_MAX_RESPONSE);
        break;
      }
      char *b = realloc(buf, cap * 2);
      if (!b) break;
      buf = b;
      cap *= 2;
    }
    ssize_t n = r < 0 ? -1 : recv(fd, buf + len, cap - len - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      complain("reading from %s: %s", path, strerror(errno));
      break;
    }
    if (n == 0) {
      complain("the daemon closed %s without answering", path);
      break;
    }
    len += (size_t)n;
  }
  free(buf);
  return NULL;
}

/* ---- main ---- */

static const char *socket_path(const char *opt, const char *config,
                               struct daemon_conf *conf, int *loaded) {
  if (opt) return opt;
  if (config) {
    struct conf_err err;
    if (conf_load_file(conf, config, &err) < 0) {
      complain("%s", conf_err_str(&err));
      conf_free(conf);
      return NULL;
    }
    *loaded = 1;
    const char *p =
        conf->control_socket ? conf->control_socket : CONTROL_DEFAULT_SOCKET;
    if (!p[0]) {
      complain("%s sets control_socket = \"\": its control socket is off",
               config);
      return NULL;
    }
    return p;
  }
  const char *env = getenv("UFFDKIT_CONTROL_SOCKET");
  return env && env[0] ? env : CONTROL_DEFAULT_SOCKET;
}

static int run(const char *path, const char *cmd, const char *listener,
               int json, int timeout_ms) {
  cJSON *req = cJSON_CreateObject();
  cJSON_AddItemToObject(req, "cmd", cJSON_CreateString(cmd));
  if (listener)
    cJSON_AddItemToObject(req, "listener", cJSON_CreateString(listener));
  char *line = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  if (!line) return CTL_NO_DAEMON;
  int fd = ctl_connect(path);
  if (fd < 0) {
    free(line);
    return CTL_NO_DAEMON;
  }
  size_t n = strlen(line);
  line[n] = '\n'; /* over the NUL; the length is kept */
  int w = ctl_send_all(fd, line, n + 1);
  free(line);
  if (w < 0) {
    complain("sending to %s: %s", path, strerror(errno));
    close(fd);
    return CTL_NO_DAEMON;
  }
  char *resp = read_line(fd, path, timeout_ms);
  close(fd);
  if (!resp) return CTL_NO_DAEMON;
  cJSON *r = cJSON_Parse(resp);
  if (!cJSON_IsObject(r)) {
    complain("the daemon's answer is not a JSON object: %.200s", resp);
    cJSON_Delete(r);
    free(resp);
    return CTL_NO_DAEMON;
  }
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
  int rc = CTL_OK;
  if (json) {
    puts(resp);
    rc = e ? CTL_REFUSED : CTL_OK;
  } else if (e) {
    complain("%s", cJSON_IsString(e) ? e->valuestring : "error");
    rc = CTL_REFUSED;
  } else if (ctl_print(stdout, cmd, r) < 0) {
    complain("unexpected answer to %s: %.200s", cmd, resp);
    rc = CTL_NO_DAEMON;
  }
  if (fflush(stdout) != 0 && rc == CTL_OK) {
    complain("writing the output: %s", strerror(errno));
    rc = CTL_USAGE;
  }
  cJSON_Delete(r);
  free(resp);
  return rc;
}

int ctl_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"socket", required_argument, NULL, 's'},
      {"config", required_argument, NULL, 'c'},
      {"json", no_argument, NULL, 'j'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {"wait-ready", no_argument, NULL, 'W'},
      {"id", required_argument, NULL, 'I'},
      {"expiry", required_argument, NULL, 'E'},
      {"no-one-shot", no_argument, NULL, 'O'},
      {"uid", required_argument, NULL, 'U'},
      {"keep-sessions", no_argument, NULL, 'K'},
      {NULL, 0, NULL, 0},
  };
  struct ctl_serve_opts so = {0};
  const char *sock = NULL, *config = NULL;
  int json = 0, timeout_ms = 10000, opt;
  argc--;
  argv++; /* argv[0] is now "ctl" */
  optind = 1;
  while ((opt = getopt_long(argc, argv, "s:c:jt:h", opts, NULL)) != -1) {
    switch (opt) {
    case 's':
      sock = optarg;
      break;
    case 'c':
      config = optarg;
      break;
    case 'j':
      json = 1;
      break;
    case 't': {
      char *end;
      double s = strtod(optarg, &end);
      if (*end || !(s > 0) || s > 86400) {
        complain("--timeout needs a number of seconds, 0 < SEC <= 86400");
        return CTL_USAGE;
      }
      timeout_ms = (int)ceil(s * 1000);
      break;
    }
    case 'h':
      usage(stdout);
      return CTL_OK;
    case 'W':
      so.wait_ready = 1;
      break;
    case 'I':
      so.id = optarg;
      break;
    case 'E':
      so.expiry = optarg;
      break;
    case 'O':
      so.no_one_shot = 1;
      break;
    case 'U':
      so.uid = optarg;
      break;
    case 'K':
      so.keep_sessions = 1;
      break;
    default:
      usage(stderr);
      return CTL_USAGE;
    }
  }
  if (optind >= argc) {
    complain("no command: use list, stats, metrics, reload or drain "
             "LISTENER (--help)");
    return CTL_USAGE;
  }
  if (sock && config) {
    complain("use --socket or --config, not both");
    return CTL_USAGE;
  }
  const char *cmd = argv[optind];
  if (ctl_serve_cmd(cmd)) {
    struct daemon_conf sc;
    int sl = 0;
    const char *sp = socket_path(sock, config, &sc, &sl);
    int rc = sp ? ctl_serve_run(sp, cmd, argv + optind + 1, argc - optind - 1,
                                &so, json, timeout_ms)
                : CTL_USAGE;
    if (sl) conf_free(&sc);
    return rc;
  }
  static const char *const cmds[] = {"list", "stats", "metrics", "reload",
                                     "drain"};
  size_t c = 0;
  while (c < sizeof cmds / sizeof *cmds && strcmp(cmd, cmds[c]))
    c++;
  if (c == sizeof cmds / sizeof *cmds) {
    complain("unknown command '%s': use list, stats, metrics, reload or "
             "drain LISTENER",
             cmd);
    return CTL_USAGE;
  }
  int want = !strcmp(cmd, "drain") ? 1 : 0;
  if (argc - optind - 1 != want) {
    if (want)
      complain("drain needs the name of a listener: uffdkit ctl drain NAME");
    else
      complain("%s takes no argument", cmd);
    return CTL_USAGE;
  }
  struct daemon_conf conf;
  int loaded = 0;
  const char *path = socket_path(sock, config, &conf, &loaded);
  if (!path) {
    if (loaded) conf_free(&conf);
    return CTL_USAGE;
  }
  int rc = run(path, cmd, want ? argv[optind + 1] : NULL, json, timeout_ms);
  if (loaded) conf_free(&conf);
  return rc;
}

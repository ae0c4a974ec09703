/* uffdkit-capture: capture the memory of running processes into images with
 * a realistic share of zero pages, one per generation of a workload. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "parse.h"

volatile int cap_interrupted;

static const char usage[] =
    "Usage: uffdkit-capture image --pid PID [--pid PID...] -o OUT [OPTIONS]\n"
    "       uffdkit-capture workload python|node|nginx -o OUT [OPTIONS]\n"
    "\n"
    "Copy the private memory of running processes (heap, stacks, anonymous\n"
    "mappings, writable data of the binary and its libraries) into a memory\n"
    "image, laid out contiguously; OUT.layout says which address of which\n"
    "process each offset holds.  The workload command starts the workload\n"
    "itself (on loopback, in a temporary directory) and stops it at the end.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT      image to write (OUT.0, OUT.1... with\n"
    "                        --generations above 1)\n"
    "  -p, --pid PID         process to capture (image; repeatable)\n"
    "  -s, --size SIZE       pad each image with zero pages to SIZE\n"
    "                        (4096, 64M, 1G...)\n"
    "  -g, --generations N   capture N images, --interval apart (default 1)\n"
    "  -i, --interval S      seconds the workload runs on between\n"
    "                        generations (default 2)\n"
    "      --prev OLD        next generation of the image OLD: keep the\n"
    "                        layout of OLD.layout and its processes\n"
    "      --text            also take read-only file-backed mappings\n"
    "      --no-stop         do not stop the processes while reading them\n"
    "  -h, --help            show this text\n"
    "  -V, --version         show the version\n"
    "\n"
    "Each image is summarised on stdout: size, share of zero pages, pages\n"
    "that could not be read (written as zeros), pages changed since the\n"
    "previous generation.\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 bad command line.\n";

static int bad_usage(const char *what, const char *arg) {
  fprintf(stderr, "uffdkit-capture: %s%s%s\n%s", what, arg ? ": " : "",
          arg ? arg : "", "Try 'uffdkit-capture --help'.\n");
  return 2;
}

int add_pid(struct capture_opts *o, pid_t pid) {
  for (size_t i = 0; i < o->npids; i++)
    if (o->pids[i] == pid) return 0;
  pid_t *p = realloc(o->pids, (o->npids + 1) * sizeof(*p));
  if (!p) return -1;
  o->pids = p;
  o->pids[o->npids++] = pid;
  return 0;
}

static int parse_opt(int opt, const char *arg, struct cli *c) {
  uint64_t v;
  char *end;
  switch (opt) {
  case 'o':
    c->out = arg;
    return 0;
  case 'p':
    if (ufk_parse_u64(arg, &v) < 0 || v == 0 || v > INT32_MAX)
      return bad_usage("--pid is not a process id", arg);
    return add_pid(&c->o, (pid_t)v) < 0 ? 1 : 0;
  case 's':
    if (ufk_parse_size(arg, &v) < 0 || v % CAP_PAGE != 0)
      return bad_usage("--size is not a size in whole 4096-byte pages", arg);
    c->o.size = v;
    return 0;
  case 'g':
    if (ufk_parse_u64(arg, &v) < 0 || v == 0 || v > 100000)
      return bad_usage("--generations is not a count from 1", arg);
    c->gens = (unsigned)v;
    return 0;
  case 'i':
    errno = 0;
    c->interval = strtod(arg, &end);
    if (errno || *end || end == arg || c->interval < 0)
      return bad_usage("--interval is not a number of seconds", arg);
    return 0;
  case 'P':
    c->prev = arg;
    return 0;
  case 't':
    c->o.text = 1;
    return 0;
  case 'n':
    c->o.no_stop = 1;
    return 0;
  }
  return bad_usage("unknown option", NULL);
}

/* Returns 0, or the exit status when the command line is wrong. */
int parse_cli(int argc, char **argv, struct cli *c) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"pid", required_argument, NULL, 'p'},
      {"size", required_argument, NULL, 's'},
      {"generations", required_argument, NULL, 'g'},
      {"interval", required_argument, NULL, 'i'},
      {"prev", required_argument, NULL, 'P'},
      {"text", no_argument, NULL, 't'},
      {"no-stop", no_argument, NULL, 'n'},
      {NULL, 0, NULL, 0}};
  *c = (struct cli){.gens = 1, .interval = 2};
  int opt, rc;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "o:p:s:g:i:", opts, NULL)) != -1)
    if ((rc = parse_opt(opt, optarg, c)) != 0) return rc;
  if (optind < argc) c->arg = argv[optind++];
  if (optind < argc) return bad_usage("unexpected argument", argv[optind]);
  if (!c->out) return bad_usage("-o OUT is required", NULL);
  if (c->prev && c->gens > 1)
    return bad_usage("--prev makes one generation", NULL);
  return 0;
}

void cap_sleep(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (time_t)seconds) * 1e9)};
  while (!cap_interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int one_generation(struct layout *l, struct capture_opts *o,
                          const char *out, const char *prev) {
  for (size_t i = 0; i < o->npids; i++)
    if (layout_add_process(l, o->pids[i], o->text) < 0 && !prev)
      return -1; /* a process gone later reads as zeros */
  struct image_stats st;
  char lpath[4096];
  snprintf(lpath, sizeof(lpath), "%s.layout", out);
  if (image_write(l, o, out, prev, &st) < 0 || layout_save(l, lpath) < 0)
    return -1;
  image_print(out, &st, prev != NULL);
  return 0;
}

int capture_generations(struct capture_opts *o, const char *out,
                        const char *prev, unsigned gens, double interval,
                        void (*between)(void *, double), void *arg) {
  struct layout l = {0};
  char name[2][4096], prevlayout[4096];
  int rc = 0;
  if (prev) {
    snprintf(prevlayout, sizeof(prevlayout), "%s.layout", prev);
    rc = layout_load(&l, prevlayout);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
      rc = add_pid(o, l.seg[i].pid);
  }
  for (unsigned g = 0; rc == 0 && g < gens; g++) {
    char *cur = name[g % 2];
    if (gens > 1)
      snprintf(cur, sizeof(name[0]), "%s.%u", out, g);
    else
      snprintf(cur, sizeof(name[0]), "%s", out);
    if (g > 0) {
      if (between)
        between(arg, interval);
      else
        cap_sleep(interval);
      prev = name[(g + 1) % 2];
    }
    rc = cap_interrupted ? -1 : one_generation(&l, o, cur, prev);
  }
  layout_free(&l);
  return rc < 0 ? 1 : 0;
}

static int cmd_image(int argc, char **argv) {
  struct cli c;
  int rc = parse_cli(argc, argv, &c);
  if (rc == 0 && c.arg) rc = bad_usage("unexpected argument", c.arg);
  if (rc == 0 && c.o.npids == 0 && !c.prev)
    rc = bad_usage("image needs --pid or --prev", NULL);
  if (rc == 0)
    rc = capture_generations(&c.o, c.out, c.prev, c.gens, c.interval, NULL,
                             NULL);
  free(c.o.pids);
  return rc;
}

static void on_signal(int sig) {
  cap_interrupted = sig;
}

int main(int argc, char **argv) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) return bad_usage("a command is required", NULL);
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fputs(usage, stdout);
    return 0;
  }
  if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
    printf("uffdkit-capture %s\n", UFFDKIT_VERSION);
    return 0;
  }
  if (!strcmp(argv[1], "image")) return cmd_image(argc - 1, argv + 1);
  if (!strcmp(argv[1], "workload")) return cmd_workload(argc - 1, argv + 1);
  return bad_usage("unknown command", argv[1]);
}

/* uffdkit-sim run: restore a simulated VM from a UFFD handler. */
#include "sim.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VCPUS 1024

enum {
  OPT_SOCKET = 256,
  OPT_IMAGE,
  OPT_EXPECT,
  OPT_MEM_SIZE,
  OPT_REGIONS,
  OPT_PAGE_SIZE,
  OPT_STYLE,
  OPT_NO_REMOVE,
  OPT_CONNECT_TIMEOUT,
  OPT_RAW,
  OPT_NO_FD,
  OPT_EXTRA_FDS,
  OPT_EXPECT_REFUSED,
  OPT_SPLIT,
  OPT_SPLIT_PAUSE,
  OPT_VCPUS,
  OPT_TOUCH,
  OPT_SEED,
  OPT_ORDER,
  OPT_DELAY,
  OPT_BALLOON,
  OPT_BALLOON_DURING,
  OPT_BALLOON_DELAY,
  OPT_TIMEOUT,
  OPT_HOLD,
  OPT_REPEAT,
  OPT_JSON,
  OPT_HELP,
};

static const struct option run_opts[] = {
    {"socket", required_argument, 0, OPT_SOCKET},
    {"image", required_argument, 0, OPT_IMAGE},
    {"expect", required_argument, 0, OPT_EXPECT},
    {"mem-size", required_argument, 0, OPT_MEM_SIZE},
    {"regions", required_argument, 0, OPT_REGIONS},
    {"page-size", required_argument, 0, OPT_PAGE_SIZE},
    {"style", required_argument, 0, OPT_STYLE},
    {"no-remove-event", no_argument, 0, OPT_NO_REMOVE},
    {"connect-timeout", required_argument, 0, OPT_CONNECT_TIMEOUT},
    {"raw-handshake", required_argument, 0, OPT_RAW},
    {"no-fd", no_argument, 0, OPT_NO_FD},
    {"extra-fds", required_argument, 0, OPT_EXTRA_FDS},
    {"expect-refused", no_argument, 0, OPT_EXPECT_REFUSED},
    {"split-send", required_argument, 0, OPT_SPLIT},
    {"split-pause", required_argument, 0, OPT_SPLIT_PAUSE},
    {"vcpus", required_argument, 0, OPT_VCPUS},
    {"touch-percent", required_argument, 0, OPT_TOUCH},
    {"seed", required_argument, 0, OPT_SEED},
    {"order", required_argument, 0, OPT_ORDER},
    {"delay-us", required_argument, 0, OPT_DELAY},
    {"balloon", required_argument, 0, OPT_BALLOON},
    {"balloon-during", no_argument, 0, OPT_BALLOON_DURING},
    {"balloon-delay", required_argument, 0, OPT_BALLOON_DELAY},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"hold", required_argument, 0, OPT_HOLD},
    {"repeat", required_argument, 0, OPT_REPEAT},
    {"json", no_argument, 0, OPT_JSON},
    {"help", no_argument, 0, OPT_HELP},
    {0, 0, 0, 0},
};

static int bad(const char *opt, const char *val, const char *want) {
  return sim_err(SIM_SETUP, "run: --%s '%s': expected %s", opt, val, want);
}

static int parse_style(const char *v, struct sim_opts *o) {
  if (!strcmp(v, "1.1"))
    o->style = STYLE_1_1;
  else if (!strcmp(v, "1.7"))
    o->style = STYLE_1_7;
  else if (!strcmp(v, "1.12"))
    o->style = STYLE_1_12;
  else
    return bad("style", v, "1.1, 1.7 or 1.12");
  return 0;
}

static int parse_order(const char *v, struct sim_opts *o) {
  if (!strcmp(v, "seq"))
    o->order = ORDER_SEQ;
  else if (!strcmp(v, "random"))
    o->order = ORDER_RANDOM;
  else if (!strncmp(v, "stride:", 7) &&
           !parse_uint(v + 7, UINT32_MAX, &o->stride) && o->stride)
    o->order = ORDER_STRIDE;
  else
    return bad("order", v, "seq, random or stride:K with K >= 1");
  return 0;
}

static int parse_page_size(const char *v, struct sim_opts *o) {
  if (parse_size(v, &o->page_size) ||
      (o->page_size != SIM_SMALL_PAGE && o->page_size != SIM_HUGE_PAGE))
    return bad("page-size", v, "4K or 2M");
  return 0;
}

static int parse_balloon(const char *v, struct sim_opts *o) {
  char buf[128];
  char *colon;
  if (o->n_balloon == SIM_MAX_BALLOONS)
    return sim_err(SIM_SETUP, "run: more than %d --balloon ranges",
                   SIM_MAX_BALLOONS);
  snprintf(buf, sizeof(buf), "%s", v);
  colon = strchr(buf, ':');
  if (!colon) return bad("balloon", v, "OFFSET:LEN");
  *colon = 0;
  struct sim_range *b = &o->balloon[o->n_balloon];
  if (parse_size(buf, &b->off) || parse_size(colon + 1, &b->len))
    return bad("balloon", v, "OFFSET:LEN (sizes with K/M/G suffixes)");
  o->n_balloon++;
  return 0;
}

static int parse_count(const char *opt, const char *v, uint64_t lo, uint64_t hi,
                       unsigned *out) {
  uint64_t n;
  if (parse_uint(v, hi, &n) || n < lo) {
    char want[64];
    snprintf(want, sizeof(want), "an integer in %" PRIu64 "..%" PRIu64, lo, hi);
    return bad(opt, v, want);
  }
  *out = (unsigned)n;
  return 0;
}

static int parse_secs(const char *opt, const char *v, double *out) {
  if (parse_double(v, 0, 1e6, out)) return bad(opt, v, "seconds (0..1e6)");
  return 0;
}

static int parse_one(int c, const char *v, struct sim_opts *o) {
  uint64_t n;
  switch (c) {
  case OPT_SOCKET:
    o->socket = v;
    return 0;
  case OPT_IMAGE:
    o->image = v;
    return 0;
  case OPT_EXPECT:
    o->expect = v;
    return 0;
  case OPT_MEM_SIZE:
    return parse_size(v, &o->mem_size) || !o->mem_size
               ? bad("mem-size", v, "a size such as 64M")
               : 0;
  case OPT_REGIONS:
    return parse_count("regions", v, 1, SIM_MAX_REGIONS, &o->regions);
  case OPT_PAGE_SIZE:
    return parse_page_size(v, o);
  case OPT_STYLE:
    return parse_style(v, o);
  case OPT_CONNECT_TIMEOUT:
    return parse_secs("connect-timeout", v, &o->connect_timeout);
  case OPT_RAW:
    o->raw_handshake = v;
    return 0;
  case OPT_EXTRA_FDS:
    return parse_count("extra-fds", v, 0, 252, &o->extra_fds);
  case OPT_SPLIT:
    if (parse_uint(v, 1 << 24, &n) || !n)
      return bad("split-send", v, "a byte count >= 1");
    o->split_send = (size_t)n;
    return 0;
  case OPT_VCPUS:
    return parse_count("vcpus", v, 1, MAX_VCPUS, &o->vcpus);
  case OPT_TOUCH:
    return parse_double(v, 0, 100, &o->touch_percent)
               ? bad("touch-percent", v, "a number in 0..100")
               : 0;
  case OPT_SEED:
    return parse_uint(v, UINT64_MAX, &o->seed) ? bad("seed", v, "an integer")
                                               : 0;
  case OPT_ORDER:
    return parse_order(v, o);
  case OPT_DELAY:
    return parse_count("delay-us", v, 0, 60000000, &o->delay_us);
  case OPT_BALLOON:
    return parse_balloon(v, o);
  case OPT_BALLOON_DELAY:
    return parse_secs("balloon-delay", v, &o->balloon_delay);
  case OPT_TIMEOUT:
    return parse_secs("timeout", v, &o->timeout);
  case OPT_HOLD:
    return parse_secs("hold", v, &o->hold);
  case OPT_SPLIT_PAUSE:
    return parse_secs("split-pause", v, &o->split_pause);
  case OPT_REPEAT:
    return parse_count("repeat", v, 1, 1000000, &o->repeat);
  default:
    return -1;
  }
}

static int parse_flag(int c, struct sim_opts *o) {
  switch (c) {
  case OPT_NO_REMOVE:
    o->no_remove_event = true;
    return 0;
  case OPT_NO_FD:
    o->no_fd = true;
    return 0;
  case OPT_EXPECT_REFUSED:
    o->expect_refused = true;
    return 0;
  case OPT_BALLOON_DURING:
    o->balloon_during = true;
    return 0;
  case OPT_JSON:
    o->json = true;
    return 0;
  default:
    return -1;
  }
}

/* Returns 0 to run, -1 after --help, or an exit code. */
static int parse_run(int argc, char **argv, struct sim_opts *o) {
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", run_opts, NULL)) != -1) {
    if (c == OPT_HELP) {
      fputs(sim_usage, stdout);
      return -1;
    }
    if (c == '?' || c == ':')
      return sim_err(SIM_SETUP, "run: unknown option or missing value: '%s'",
                     argv[optind - 1]);
    int rc = parse_flag(c, o);
    if (rc < 0) rc = parse_one(c, optarg, o);
    if (rc) return rc;
  }
  if (optind != argc)
    return sim_err(SIM_SETUP, "run: unexpected argument '%s'", argv[optind]);
  if (!o->socket || !o->image)
    return sim_err(SIM_SETUP, "run: --socket and --image are required");
  if (o->balloon_during && !o->n_balloon)
    return sim_err(SIM_SETUP, "run: --balloon-during needs --balloon ranges");
  if (o->balloon_delay > 0 && !o->balloon_during)
    return sim_err(SIM_SETUP, "run: --balloon-delay needs --balloon-during");
  return 0;
}

static int restore_vm(const struct sim_opts *o, struct sim_vm *vm,
                      struct sim_result *res) {
  int sock = -1;
  int rc = conn_open(o, &sock);
  if (!rc) rc = conn_send(sock, vm, o);
  if (rc == SIM_CLOSED) {
    rc = SIM_OK; /* refused before the handshake was all sent */
  } else if (!rc && o->expect_refused) {
    rc = conn_expect_refused(sock, o->timeout);
  } else if (!rc) {
    /* Before 1.12 Firecracker drops the socket right after sending. */
    if (o->style != STYLE_1_12) close(sock), sock = -1;
    rc = vcpu_restore(vm, o, sock, res);
    if (!rc && o->hold > 0) sleep_s(o->hold);
  }
  if (sock >= 0) close(sock);
  return rc;
}

static int restore_once(const struct sim_opts *o, struct sim_result *res) {
  struct sim_vm vm;
  int rc = vm_create(&vm, o);
  if (rc) return rc;
  rc = balloon_check_args(&vm, o);
  if (!rc) rc = restore_vm(o, &vm, res);
  vm_destroy(&vm);
  return rc;
}

int cmd_run(int argc, char **argv) {
  struct sim_opts o = {
      .page_size = SIM_SMALL_PAGE,
      .regions = 1,
      .style = STYLE_1_12,
      .connect_timeout = 10,
      .timeout = 120,
      .repeat = 1,
      .split_pause = 0.1,
      .vcpus = 1,
      .touch_percent = 100,
  };
  int rc = parse_run(argc, argv, &o);
  if (rc) return rc < 0 ? SIM_OK : rc;
  signal(SIGPIPE, SIG_IGN);
  sigbus_install();
  struct sim_result res = {0};
  for (unsigned i = 0; i < o.repeat && !rc; i++)
    rc = restore_once(&o, &res);
  if (!rc && !o.expect_refused) {
    report_print(&res, &o);
    rc = res.mismatches ? SIM_MISMATCH : SIM_OK;
  }
  free(res.lat_ns);
  return rc;
}

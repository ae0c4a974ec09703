/* uffdkit-sim mkimage: a deterministic, sparse memory image. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IMG_PAGE 4096u
#define IMG_BUF_PAGES 256u /* 1 MiB write buffer */

/* Keeps the zero choice independent of the page contents stream. */
#define ZERO_SALT 0x7a65726f70616765ULL

bool image_page_is_zero(uint64_t seed, uint64_t index, double zero_percent) {
  return unit_fraction(mix2(seed ^ ZERO_SALT, index)) * 100.0 < zero_percent;
}

void image_page_fill(uint64_t seed, uint64_t index, uint8_t *page) {
  uint64_t state = mix2(seed, index);
  for (unsigned i = 0; i < IMG_PAGE; i += 8) {
    uint64_t w = splitmix64(&state);
    memcpy(page + i, &w, 8);
  }
}

static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off,
                     const char *path) {
  while (len) {
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return sim_err(SIM_SETUP,
                     "mkimage: write to %s at offset %" PRIu64 " failed: %s",
                     path, off, n < 0 ? strerror(errno) : "no progress");
    buf += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

struct image_job {
  const char *path;
  uint64_t size;
  uint64_t seed;
  double zero_percent;
};

/* Data pages are gathered into runs so that a run of them costs one write;
 * zero pages end a run and stay holes. */
static int write_pages(int fd, const struct image_job *j) {
  static uint8_t buf[IMG_BUF_PAGES * IMG_PAGE];
  uint64_t pages = j->size / IMG_PAGE;
  uint64_t run_start = 0;
  unsigned run = 0;
  for (uint64_t p = 0; p <= pages; p++) {
    bool data = p < pages && !image_page_is_zero(j->seed, p, j->zero_percent);
    if (run && (!data || run == IMG_BUF_PAGES)) {
      int rc = write_all(fd, buf, (size_t)run * IMG_PAGE, run_start * IMG_PAGE,
                         j->path);
      if (rc) return rc;
      run = 0;
    }
    if (!data) continue;
    if (!run) run_start = p;
    image_page_fill(j->seed, p, buf + (size_t)run * IMG_PAGE);
    run++;
  }
  return 0;
}

static int write_image(const struct image_job *j) {
  int fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return sim_err(SIM_SETUP, "mkimage: cannot create %s: %s", j->path,
                   strerror(errno));
  int rc = 0;
  if (ftruncate(fd, (off_t)j->size))
    rc = sim_err(SIM_SETUP,
                 "mkimage: cannot set the size of %s to %" PRIu64 ": %s",
                 j->path, j->size, strerror(errno));
  if (!rc) rc = write_pages(fd, j);
  if (close(fd) && !rc)
    rc = sim_err(SIM_SETUP, "mkimage: closing %s failed: %s", j->path,
                 strerror(errno));
  return rc;
}

static const char mkimage_usage[] =
    "usage: uffdkit-sim mkimage FILE --size SIZE [--seed N] "
    "[--zero-percent P]\n";

static int parse_mkimage(int argc, char **argv, struct image_job *j) {
  static const struct option opts[] = {
      {"size", required_argument, 0, 's'},
      {"seed", required_argument, 0, 'S'},
      {"zero-percent", required_argument, 0, 'z'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 's' &&
        (parse_size(optarg, &j->size) || !j->size || j->size % IMG_PAGE))
      return sim_err(SIM_SETUP,
                     "mkimage: --size '%s' is not a positive multiple of 4K",
                     optarg);
    if (c == 'S' && parse_uint(optarg, UINT64_MAX, &j->seed))
      return sim_err(SIM_SETUP, "mkimage: --seed '%s' is not an integer",
                     optarg);
    if (c == 'z' && parse_double(optarg, 0, 100, &j->zero_percent))
      return sim_err(SIM_SETUP,
                     "mkimage: --zero-percent '%s' is not a number in 0..100",
                     optarg);
    if (c == 'h') {
      fputs(mkimage_usage, stdout);
      return -1;
    }
    if (c == '?')
      return sim_err(SIM_SETUP,
                     "mkimage: unknown option or missing value: '%s'",
                     argv[optind - 1]);
  }
  if (optind != argc - 1 || !j->size)
    return sim_err(SIM_SETUP, "mkimage: need one FILE and --size\n%s",
                   mkimage_usage);
  j->path = argv[optind];
  return 0;
}

int cmd_mkimage(int argc, char **argv) {
  struct image_job j = {.zero_percent = 10};
  int rc = parse_mkimage(argc, argv, &j);
  if (rc) return rc < 0 ? SIM_OK : rc;
  return write_image(&j);
}

/* stack-copy: the CPU time the daemon spends getting 2 MiB of warm data out
 * of a source stack and copied once (as UFFDIO_COPY copies it into the
 * guest), through file + cache against the mmap source, in the same run.
 *
 *   stack-copy PLUGIN_DIR [PASSES]
 *
 * Each pass maps (or, when map() declines, reads) every 2 MiB of a 64 MiB
 * image and copies it into a destination buffer, timed in thread CPU time.
 * Passes alternate between the two stacks; the medians and their ratio are
 * printed.  Built against ABI 1.2 it releases every mapped pointer, as the
 * daemon does; against an older tree it never does (that tree had no
 * release, and its cache declines map() without `pin`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "plugin.h"
#include "stack.h"

#define IMAGE (64ull << 20)
#define STEP (2ull << 20)
#define MAX_PASSES 64

static double cpu_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* One pass over the image: µs of CPU per 2 MiB. */
static double pass(struct stack *s, void *buf, void *dst) {
  double t0 = cpu_us();
  for (uint64_t off = 0; off < IMAGE; off += STEP) {
    const void *p = stack_map(s, off, STEP);
    if (p) {
      memcpy(dst, p, STEP);
#if UFK_ABI_MINOR >= 2
      stack_release(s, p, off, STEP);
#endif
    } else if (stack_read(s, buf, STEP, off, UFK_READ_FAULT) == 0) {
      memcpy(dst, buf, STEP);
    } else {
      fprintf(stderr, "stack-copy: read at %llu failed\n",
              (unsigned long long)off);
      exit(1);
    }
  }
  return (cpu_us() - t0) / (double)(IMAGE / STEP);
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, by_value);
  return v[n / 2];
}

static struct stack *build(struct daemon_conf *c, int i, const char *dir) {
  struct conf_err err;
  struct stack *s =
      stack_build(host_table(), c, &c->listeners[i], dir, NULL, &err);
  if (!s) {
    fprintf(stderr, "stack-copy: %s\n", conf_err_str(&err));
    exit(1);
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: stack-copy PLUGIN_DIR [PASSES]\n");
    return 2;
  }
  int passes = argc > 2 ? atoi(argv[2]) : 9;
  if (passes < 1 || passes > MAX_PASSES) passes = 9;
  char img[] = "/tmp/stack-copy.XXXXXX";
  int fd = mkstemp(img);
  uint8_t *data = malloc(STEP);
  for (uint64_t off = 0; fd >= 0 && off < IMAGE; off += STEP) {
    for (uint64_t k = 0; k < STEP; k++)
      data[k] = (uint8_t)((off + k) * 7 + 1);
    if (write(fd, data, STEP) != (ssize_t)STEP) return 1;
  }
  if (fd < 0) return 1;
  close(fd);
  char text[1024];
  snprintf(text, sizeof text,
           "listeners = ( { name = \"mmap\"; socket = \"/tmp/x\";\n"
           "  source = { plugin = \"mmap\"; path = \"%s\"; }; },\n"
           "{ name = \"cache\"; socket = \"/tmp/y\";\n"
           "  source = { plugin = \"file\"; path = \"%s\"; };\n"
           "  layers = ( { layer = \"cache\"; size = \"128M\"; } ); } );\n",
           img, img);
  struct daemon_conf c;
  struct conf_err err;
  if (conf_load_string(&c, text, "stack-copy", &err) < 0) {
    fprintf(stderr, "stack-copy: %s\n", conf_err_str(&err));
    return 1;
  }
  struct stack *mm = build(&c, 0, argv[1]), *ca = build(&c, 1, argv[1]);
  void *buf = aligned_alloc(4096, STEP), *dst = aligned_alloc(4096, STEP);
  memset(dst, 0, STEP);
  pass(mm, buf, dst); /* warm-up: page cache, and every chunk cached */
  pass(ca, buf, dst);
  double m[MAX_PASSES], k[MAX_PASSES];
  for (int i = 0; i < passes; i++) {
    m[i] = pass(mm, buf, dst);
    k[i] = pass(ca, buf, dst);
  }
  double mm_us = median(m, passes), ca_us = median(k, passes);
  printf("CPU us per 2 MiB (median of %d passes): mmap %.1f, file+cache %.1f, "
         "ratio %.2f\n",
         passes, mm_us, ca_us, ca_us / mm_us);
  stack_destroy(mm);
  stack_destroy(ca);
  plugin_unload_all();
  conf_free(&c);
  unlink(img);
  return 0;
}

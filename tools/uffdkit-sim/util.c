/* Parsing, hashing and timing utilities of uffdkit-sim. */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sim_err(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("uffdkit-sim: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return code;
}

static int size_shift(char c) {
  switch (c) {
  case 'k':
  case 'K':
    return 10;
  case 'm':
  case 'M':
    return 20;
  case 'g':
  case 'G':
    return 30;
  case 't':
  case 'T':
    return 40;
  default:
    return -1;
  }
}

/* Accepts N, NK, NM, NG, NT (powers of 1024), optionally followed by "iB"
 * or "B" so that values copied from other tools also work. */
int parse_size(const char *s, uint64_t *out) {
  char *end;
  int shift = 0;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno) return -1;
  if (*end) {
    shift = size_shift(*end++);
    if (shift < 0) return -1;
    if (!strcmp(end, "iB") || !strcmp(end, "B")) end += strlen(end);
  }
  if (*end || (shift && v > (UINT64_MAX >> shift))) return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

int parse_uint(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A hash of two words: every (seed, page index) pair gets its own value. */
uint64_t mix2(uint64_t a, uint64_t b) {
  uint64_t s = a;
  uint64_t h = splitmix64(&s);
  s = h ^ b;
  return splitmix64(&s);
}

double unit_fraction(uint64_t h) {
  return (double)(h >> 11) * 0x1.0p-53;
}

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s};
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
}

/* pattern-image FILE SIZE [SEED [ZERO_PERCENT]]: writes the memory image the
 * pattern plugin serves with the same settings (zero pages left as holes),
 * for uffdkit-sim run --image FILE to compare a restore with. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"

/* A number with an optional K, M, G or T suffix (powers of 1024), as the
 * daemon reads the plugin's size setting. */
static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return -1;
  int shift = 0;
  switch (*end) {
  case 'T':
    shift += 10; /* fall through */
  case 'G':
    shift += 10; /* fall through */
  case 'M':
    shift += 10; /* fall through */
  case 'K':
    shift += 10;
    end++;
    break;
  case 0:
    break;
  default:
    return -1;
  }
  if (*end || (shift && v > (~0ull >> shift))) return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

int main(int argc, char **argv) {
  uint64_t size, seed = 0, zp = 10;
  if (argc < 3 || argc > 5 || parse_size(argv[2], &size) < 0 ||
      (argc > 3 && parse_size(argv[3], &seed) < 0) ||
      (argc > 4 && (parse_size(argv[4], &zp) < 0 || zp > 100))) {
    fprintf(stderr, "usage: pattern-image FILE SIZE [SEED [ZERO_PERCENT]]\n"
                    "  SIZE takes K, M, G or T; SEED >= 0; ZERO_PERCENT "
                    "0-100 (default 10)\n");
    return 2;
  }
  if (size == 0 || size % PATTERN_PAGE) {
    fprintf(stderr, "pattern-image: SIZE must be a positive multiple of "
                    "4096\n");
    return 2;
  }
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
    fprintf(stderr, "pattern-image: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  static uint64_t page[PATTERN_WORDS];
  for (uint64_t pg = 0; pg < size / PATTERN_PAGE; pg++) {
    if (pattern_is_zero(seed, pg, (unsigned)zp))
      continue; /* a hole reads as zeros */
    pattern_fill(seed, pg, (unsigned)zp, page);
    if (pwrite(fd, page, PATTERN_PAGE, (off_t)(pg * PATTERN_PAGE)) !=
        PATTERN_PAGE) {
      fprintf(stderr, "pattern-image: %s: %s\n", argv[1], strerror(errno));
      return 1;
    }
  }
  if (close(fd) < 0) {
    fprintf(stderr, "pattern-image: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  return 0;
}

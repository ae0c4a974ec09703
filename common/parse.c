#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ufk_parse_u64(const char *s, uint64_t *out) {
  char *end;
  if (!s || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int ufk_parse_i64(const char *s, int64_t *out) {
  char *end;
  if (!s || !*s || isspace((unsigned char)*s)) return -1;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

struct unit {
  const char *name;
  uint64_t mult;
};

/* Parses "<digits><unit>" where unit is one of units (or empty: mult_empty). */
static int parse_with_unit(const char *s, const struct unit *units,
                           uint64_t mult_empty, uint64_t *out) {
  char *end;
  if (!s || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  while (*end == ' ')
    end++;
  uint64_t mult = 0;
  if (!*end) mult = mult_empty;
  for (const struct unit *u = units; !mult && u->name; u++)
    if (!strcasecmp(end, u->name)) mult = u->mult;
  if (!mult || (v && v > UINT64_MAX / mult)) return -1;
  *out = v * mult;
  return 0;
}

int ufk_parse_size(const char *s, uint64_t *out) {
  static const struct unit units[] = {
      {"B", 1},           {"K", 1ull << 10}, {"KiB", 1ull << 10},
      {"KB", 1ull << 10}, {"M", 1ull << 20}, {"MiB", 1ull << 20},
      {"MB", 1ull << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30},
      {"GB", 1ull << 30}, {"T", 1ull << 40}, {"TiB", 1ull << 40},
      {"TB", 1ull << 40}, {NULL, 0},
  };
  return parse_with_unit(s, units, 1, out);
}

int ufk_parse_duration_ns(const char *s, uint64_t *out) {
  static const struct unit units[] = {
      {"ns", 1},
      {"us", 1000},
      {"ms", 1000000},
      {"s", 1000000000ull},
      {"m", 60ull * 1000000000ull},
      {"min", 60ull * 1000000000ull},
      {"h", 3600ull * 1000000000ull},
      {NULL, 0},
  };
  return parse_with_unit(s, units, 1000000000ull, out);
}

int ufk_parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1", NULL};
  static const char *const no[] = {"false", "no", "off", "0", NULL};
  if (!s) return -1;
  for (int i = 0; yes[i]; i++) {
    if (!strcasecmp(s, yes[i])) {
      *out = 1;
      return 0;
    }
    if (!strcasecmp(s, no[i])) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

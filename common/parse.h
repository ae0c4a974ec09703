/* Parsers for setting values, shared by the daemon, the tools and tests. */
#ifndef UFFDKIT_COMMON_PARSE_H
#define UFFDKIT_COMMON_PARSE_H

#include <stdint.h>

/* Each returns 0 and sets *out, or -1 if s is not a whole valid value. */
int ufk_parse_u64(const char *s, uint64_t *out);
int ufk_parse_i64(const char *s, int64_t *out);
/* "4096", "64K", "4M", "2G", "1T" (powers of 1024; "KiB" spellings too). */
int ufk_parse_size(const char *s, uint64_t *out);
/* "250ms", "10s", "2m", "1h", "500us", "100ns"; a bare number is seconds. */
int ufk_parse_duration_ns(const char *s, uint64_t *out);
/* true/false, yes/no, on/off, 1/0 */
int ufk_parse_bool(const char *s, int *out);

#endif

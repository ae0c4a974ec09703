#include "handshake.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXACT_DOUBLE 9007199254740992.0 /* 2^53 */

static int invalid(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int invalid(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return HS_INVALID;
}

/* An unsigned integer member; 1 if absent, -1 if not an exact u64. */
static int get_u64(const cJSON *o, const char *key, uint64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return 1;
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
      v->valuedouble >= MAX_EXACT_DOUBLE ||
      v->valuedouble != floor(v->valuedouble))
    return -1;
  *out = (uint64_t)v->valuedouble;
  return 0;
}

static int region_page_size(const cJSON *o, int i, uint32_t *ps,
                            int *has_new_key, char *err, size_t errlen) {
  uint64_t a = 0, b = 0;
  int ra = get_u64(o, "page_size", &a);
  int rb = get_u64(o, "page_size_kib", &b); /* holds bytes, not KiB */
  if (ra < 0 || rb < 0)
    return invalid(err, errlen,
                   "region %d: page_size%s is not an unsigned "
                   "integer",
                   i, ra < 0 ? "" : "_kib");
  if (ra == 0 && rb == 0 && a != b)
    return invalid(err, errlen,
                   "region %d: page_size %llu and page_size_kib %llu differ", i,
                   (unsigned long long)a, (unsigned long long)b);
  uint64_t v = ra == 0 ? a : rb == 0 ? b : 4096;
  if (v != 4096 && v != 2097152)
    return invalid(err, errlen,
                   "region %d: page size %llu is neither 4096 nor 2097152", i,
                   (unsigned long long)v);
  *ps = (uint32_t)v;
  *has_new_key = ra == 0;
  return 0;
}

static int parse_region(const cJSON *o, int i, struct ufk_region *r,
                        uint32_t *ps, int *keeps, char *err, size_t errlen) {
  static const char *const keys[] = {"base_host_virt_addr", "size", "offset"};
  uint64_t *dst[] = {&r->base, &r->size, &r->offset};
  if (!cJSON_IsObject(o))
    return invalid(err, errlen, "region %d is not a JSON object", i);
  for (int k = 0; k < 3; k++) {
    int rc = get_u64(o, keys[k], dst[k]);
    if (rc)
      return invalid(err, errlen, "region %d: %s %s", i, keys[k],
                     rc > 0 ? "is missing" : "is not an unsigned integer");
  }
  return region_page_size(o, i, ps, keeps, err, errlen);
}

static int check_region(const struct ufk_region *r, int i, uint32_t ps,
                        char *err, size_t errlen) {
  if (r->size == 0) return invalid(err, errlen, "region %d: size is 0", i);
  if (r->base % ps || r->size % ps || r->offset % ps)
    return invalid(err, errlen,
                   "region %d: base 0x%llx, size %llu or offset %llu is not "
                   "aligned to the page size %u",
                   i, (unsigned long long)r->base, (unsigned long long)r->size,
                   (unsigned long long)r->offset, ps);
  if (r->base + r->size < r->base || r->offset + r->size < r->offset)
    return invalid(err, errlen, "region %d: base or offset + size overflows",
                   i);
  return 0;
}

static int cmp_base(const void *a, const void *b) {
  const struct ufk_region *x = a, *y = b;
  return x->base < y->base ? -1 : x->base > y->base;
}

static int check_overlap(const struct handshake *h, char *err, size_t errlen) {
  struct ufk_region s[CONF_MAX_REGIONS];
  memcpy(s, h->regions, h->nregions * sizeof *s);
  qsort(s, h->nregions, sizeof *s, cmp_base);
  for (uint32_t i = 1; i < h->nregions; i++)
    if (s[i - 1].base + s[i - 1].size > s[i].base)
      return invalid(err, errlen, "regions at 0x%llx and 0x%llx overlap",
                     (unsigned long long)s[i - 1].base,
                     (unsigned long long)s[i].base);
  return 0;
}

static int parse_array(const cJSON *arr, uint32_t max_regions,
                       struct handshake *h, char *err, size_t errlen) {
  if (!cJSON_IsArray(arr))
    return invalid(err, errlen, "handshake is not a JSON array");
  int n = cJSON_GetArraySize(arr);
  if (n < 1) return invalid(err, errlen, "handshake has no regions");
  if ((uint32_t)n > max_regions)
    return invalid(err, errlen,
                   "handshake has %d regions, more than the %u "
                   "allowed",
                   n, max_regions);
  int i = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, arr) {
    uint32_t ps = 0;
    int keeps = 0;
    if (parse_region(o, i, &h->regions[i], &ps, &keeps, err, errlen) < 0)
      return HS_INVALID;
    if (i > 0 && ps != h->page_size)
      return invalid(err, errlen,
                     "region %d: page size %u differs from "
                     "region 0's %u",
                     i, ps, h->page_size);
    h->page_size = ps;
    h->keeps_socket |= keeps;
    if (check_region(&h->regions[i], i, ps, err, errlen) < 0) return HS_INVALID;
    i++;
  }
  h->nregions = (uint32_t)n;
  return check_overlap(h, err, errlen) < 0 ? HS_INVALID : HS_COMPLETE;
}

/* Length of the JSON array at the start of buf (after white space): 0 if it
 * is not closed yet, -1 if buf does not start with an array.  Brackets are
 * matched outside strings, so cJSON then parses exactly one value and its
 * verdict is final. */
static long array_end(const char *buf, size_t len) {
  size_t i = 0;
  while (i < len && strchr(" \t\r\n", buf[i]))
    i++;
  if (i == len) return 0;
  if (buf[i] != '[') return -1;
  int depth = 0, in_str = 0, esc = 0;
  for (; i < len; i++) {
    char c = buf[i];
    if (in_str) {
      if (esc)
        esc = 0;
      else if (c == '\\')
        esc = 1;
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      depth++;
    } else if ((c == ']' || c == '}') && --depth == 0) {
      return (long)(i + 1);
    }
  }
  return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0: no overlong
 * forms, no UTF-16 surrogates, nothing past U+10FFFF (RFC 3629). */
static int utf8_len(const unsigned char *p, size_t left) {
  int n = p[0] < 0x80             ? 1
          : (p[0] & 0xe0) == 0xc0 ? 2
          : (p[0] & 0xf0) == 0xe0 ? 3
          : (p[0] & 0xf8) == 0xf0 ? 4
                                  : 0;
  if (!n || (size_t)n > left || (n == 2 && p[0] < 0xc2) ||
      (n == 4 && p[0] > 0xf4))
    return 0;
  for (int i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
      (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
    return 0;
  return n;
}

/* cJSON is lenient: refuse what RFC 8259 does not allow (NUL bytes, control
 * characters inside strings, invalid UTF-8) before it parses. */
static int strict_bytes(const char *buf, size_t len, char *err, size_t errlen) {
  const unsigned char *p = (const unsigned char *)buf;
  int in_str = 0, esc = 0;
  for (size_t i = 0; i < len;) {
    int n = utf8_len(p + i, len - i);
    if (!n || p[i] == 0)
      return invalid(err, errlen,
                     "handshake is not valid JSON (%s at byte %zu)",
                     p[i] ? "invalid UTF-8" : "a NUL byte", i);
    if (p[i] < 0x20 && (in_str || !strchr(" \t\r\n", p[i])))
      return invalid(err, errlen,
                     "handshake is not valid JSON (control character 0x%02x "
                     "at byte %zu)",
                     p[i], i);
    if (in_str && !esc && p[i] == '\\')
      esc = 1;
    else if (p[i] == '"' && !esc)
      in_str = !in_str;
    else
      esc = 0;
    i += (size_t)n;
  }
  return 0;
}

int handshake_parse(const char *buf, size_t len, uint32_t max_regions,
                    struct handshake *h, char *err, size_t errlen) {
  memset(h, 0, sizeof *h);
  long end = array_end(buf, len);
  if (end < 0) return invalid(err, errlen, "handshake is not a JSON array");
  if (end == 0) return HS_INCOMPLETE;
  if (strict_bytes(buf, (size_t)end, err, errlen) < 0) return HS_INVALID;
  cJSON *arr = cJSON_ParseWithLength(buf, (size_t)end);
  if (!arr) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= buf ? (size_t)(at - buf) : 0;
    return invalid(err, errlen, "handshake is not valid JSON (at byte %zu)",
                   off);
  }
  int r = parse_array(arr, max_regions, h, err, errlen);
  h->consumed = (size_t)end;
  cJSON_Delete(arr);
  return r;
}

int handshake_find_region(const struct ufk_region *r, uint32_t n,
                          uint64_t addr) {
  for (uint32_t i = 0; i < n; i++)
    if (addr - r[i].base < r[i].size) return (int)i;
  return -1;
}

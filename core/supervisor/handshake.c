#include "handshake.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

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

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* cJSON keeps every member of an object, and a lookup finds the first:
 * a key given twice would be read one way here and maybe another way
 * elsewhere, so it is refused.  Sorted, so a peer's thousand keys cost
 * n log n. */
static int check_duplicates(const cJSON *o, int i, char *err, size_t errlen) {
  int n = cJSON_GetArraySize(o), k = 0;
  if (n < 2) return 0;
  const char **names = malloc((size_t)n * sizeof *names);
  if (!names) return invalid(err, errlen, "region %d: out of memory", i);
  const cJSON *m;
  cJSON_ArrayForEach(m, o) names[k++] = m->string;
  qsort(names, (size_t)n, sizeof *names, cmp_name);
  int r = 0;
  for (k = 1; k < n && !r; k++)
    if (!strcmp(names[k - 1], names[k]))
      r = invalid(err, errlen, "region %d: key \"%.64s\" appears twice", i,
                  names[k]);
  free(names);
  return r;
}

static int parse_region(const cJSON *o, int i, struct ufk_region *r,
                        uint32_t *ps, int *keeps, char *err, size_t errlen) {
  static const char *const keys[] = {"base_host_virt_addr", "size", "offset"};
  uint64_t *dst[] = {&r->base, &r->size, &r->offset};
  if (!cJSON_IsObject(o))
    return invalid(err, errlen, "region %d is not a JSON object", i);
  if (check_duplicates(o, i, err, errlen) < 0) return HS_INVALID;
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

/* Scans buf[sc->pos..len) for the end of the JSON array at its start
 * (after white space), carrying the state over from the bytes scanned
 * before, so that a handshake arriving a byte at a time costs its length
 * and not its square.  Sets sc->end (the array's length) when it closes,
 * or sc->end = -1 if buf does not start with an array.  Brackets are
 * matched outside strings, so cJSON then parses exactly one value and its
 * verdict is final. */
static void scan_more(struct hs_scan *sc, const char *buf, size_t len) {
  for (; sc->pos < len && !sc->end; sc->pos++) {
    char c = buf[sc->pos];
    sc->examined++;
    if (!sc->started) {
      if (strchr(" \t\r\n", c) && c) continue;
      if (c != '[') {
        sc->end = -1;
        return;
      }
      sc->started = 1;
    }
    if (sc->in_str) {
      if (sc->esc)
        sc->esc = 0;
      else if (c == '\\')
        sc->esc = 1;
      else if (c == '"')
        sc->in_str = 0;
    } else if (c == '"') {
      sc->in_str = 1;
    } else if (c == '[' || c == '{') {
      sc->depth++;
    } else if ((c == ']' || c == '}') && --sc->depth == 0) {
      sc->end = (long)(sc->pos + 1);
    }
  }
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
    if (in_str && esc && p[i] == 'u' && len - i >= 5 &&
        !memcmp(p + i + 1, "0000", 4))
      return invalid(err, errlen,
                     "handshake has \\u0000 inside a string (at byte %zu)",
                     i - 1);
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

int handshake_feed(struct hs_scan *sc, const char *buf, size_t len,
                   uint32_t max_regions, struct handshake *h, char *err,
                   size_t errlen) {
  memset(h, 0, sizeof *h);
  scan_more(sc, buf, len);
  if (sc->end < 0) return invalid(err, errlen, "handshake is not a JSON array");
  if (sc->end == 0) return HS_INCOMPLETE;
  sc->parses++;
  size_t end = (size_t)sc->end;
  if (strict_bytes(buf, end, err, errlen) < 0) return HS_INVALID;
  cJSON *arr = cJSON_ParseWithLength(buf, end);
  if (!arr) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= buf ? (size_t)(at - buf) : 0;
    return invalid(err, errlen, "handshake is not valid JSON (at byte %zu)",
                   off);
  }
  int r = parse_array(arr, max_regions, h, err, errlen);
  h->consumed = end;
  cJSON_Delete(arr);
  return r;
}

int handshake_parse(const char *buf, size_t len, uint32_t max_regions,
                    struct handshake *h, char *err, size_t errlen) {
  struct hs_scan sc = {0};
  return handshake_feed(&sc, buf, len, max_regions, h, err, errlen);
}

/* Unit tests of the handshake parser: every Firecracker style, 2 MiB pages,
 * several regions, unknown keys, bytes after the array, and the region
 * lookup (input refused, and input arriving a byte at a time, are in
 * test_handshake_bad.c). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "hstest.h"
#include "region.h"

#define K4 4096ull
#define M2 2097152ull
#define BASE 140244305313792ull /* 0x7f8d2c000000: 2 MiB-aligned */

struct handshake H;
char ERR[512];

/* Parses a NUL-terminated text with max_regions 64. */
static int parse(const char *s) {
  ERR[0] = 0;
  return handshake_parse(s, strlen(s), CONF_MAX_REGIONS, &H, ERR, sizeof ERR);
}

static void region_is(uint32_t i, uint64_t base, uint64_t size,
                      uint64_t offset) {
  ck_assert_msg(
      H.regions[i].base == base, "region %u: base 0x%llx, expected 0x%llx", i,
      (unsigned long long)H.regions[i].base, (unsigned long long)base);
  ck_assert_msg(
      H.regions[i].size == size, "region %u: size %llu, expected %llu", i,
      (unsigned long long)H.regions[i].size, (unsigned long long)size);
  ck_assert_msg(
      H.regions[i].offset == offset, "region %u: offset %llu, expected %llu", i,
      (unsigned long long)H.regions[i].offset, (unsigned long long)offset);
}

void complete(const char *s, uint32_t ps, uint32_t n, int keeps) {
  int r = parse(s);
  ck_assert_msg(r == HS_COMPLETE, "'%s' gave %d (%s), expected complete", s, r,
                ERR);
  ck_assert_msg(H.page_size == ps, "'%s': page size %u, expected %u", s,
                H.page_size, ps);
  ck_assert_msg(H.nregions == n, "'%s': %u regions, expected %u", s, H.nregions,
                n);
  ck_assert_msg(H.keeps_socket == keeps, "'%s': keeps_socket %d, expected %d",
                s, H.keeps_socket, keeps);
  ck_assert_msg(H.consumed == strlen(s), "'%s': consumed %zu of %zu bytes", s,
                H.consumed, strlen(s));
}

/* Firecracker 1.1 to 1.6: no page size at all, so 4 KiB. */
START_TEST(style_1_1) {
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
           "\"offset\":0}]",
           K4, 1, 0);
  region_is(0, BASE, 256ull << 20, 0);
}
END_TEST

/* 1.7 to 1.11: page_size_kib, whose value is in bytes. */
START_TEST(style_1_7) {
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
           "\"offset\":0,\"page_size_kib\":4096}]",
           K4, 1, 0);
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
           "\"offset\":0,\"page_size_kib\":2097152}]",
           M2, 1, 0);
}
END_TEST

/* 1.12 and later: page_size and page_size_kib, same value; the socket is
 * kept, so hang-up means Firecracker exited. */
START_TEST(style_1_12) {
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
           "\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096}]",
           K4, 1, 1);
  region_is(0, BASE, 256ull << 20, 0);
  /* page_size alone (page_size_kib dropped, as announced for 2.0) */
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
           "\"offset\":0,\"page_size\":4096}]",
           K4, 1, 1);
}
END_TEST

START_TEST(huge_pages) {
  complete("[{\"base_host_virt_addr\":140244305313792,\"size\":134217728,"
           "\"offset\":0,\"page_size\":2097152,\"page_size_kib\":2097152}]",
           M2, 1, 1);
  region_is(0, BASE, 128ull << 20, 0);
}
END_TEST

/* Three regions with gaps, offsets the sum of the earlier sizes, in any
 * order of keys. */
START_TEST(three_regions) {
  complete("[{\"base_host_virt_addr\":1048576,\"size\":3221225472,"
           "\"offset\":0,\"page_size\":4096},"
           "{\"offset\":3221225472,\"size\":1073741824,"
           "\"base_host_virt_addr\":4294967296,\"page_size\":4096},"
           "{\"base_host_virt_addr\":549755813888,\"size\":4096,"
           "\"page_size\":4096,\"offset\":4294967296}]",
           K4, 3, 1);
  region_is(0, 1048576, 3ull << 30, 0);
  region_is(1, 4ull << 30, 1ull << 30, 3ull << 30);
  region_is(2, 512ull << 30, K4, 4ull << 30);
}
END_TEST

/* Keys of later or unreleased versions, of any JSON type, are ignored;
 * white space anywhere is allowed. */
START_TEST(unknown_keys) {
  complete(" \n[ {\"base_host_virt_addr\" : 8192, \"gpa_start\":0,"
           "\"is_guest_memfd\":false, \"size\":4096, \"offset\":4096,"
           "\"note\":\"a ] } [ { \\\" quoted\", \"more\":[1,{\"x\":[]}],"
           "\"none\":null, \"page_size\":4096 } ]",
           K4, 1, 1);
  region_is(0, 8192, K4, K4);
}
END_TEST

/* Bytes after the array (secret-hiding builds send a second message right
 * after) are not part of the handshake: consumed stops at the ']'. */
START_TEST(leftover_bytes) {
  const char *json = "[{\"base_host_virt_addr\":4096,\"size\":8192,"
                     "\"offset\":0,\"page_size\":4096}]";
  const char *tails[] = {"no_exitless_apf", "[{\"more\":1}]", "\n", "garbage{"};
  for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", json, tails[t]);
    int r = handshake_parse(buf, strlen(buf), 64, &H, ERR, sizeof ERR);
    ck_assert_msg(r == HS_COMPLETE, "with tail '%s': %d (%s)", tails[t], r,
                  ERR);
    ck_assert_msg(H.consumed == strlen(json),
                  "with tail '%s': consumed %zu, expected %zu (the array)",
                  tails[t], H.consumed, strlen(json));
    ck_assert_msg(H.consumed < strlen(buf), "with tail '%s': nothing kept",
                  tails[t]);
    region_is(0, 4096, 8192, 0);
  }
}
END_TEST

/* A stream may deliver the handshake in pieces: every proper prefix is
 * incomplete (never invalid), the whole is complete. */
START_TEST(split_everywhere) {
  const char *msgs[] = {
      "[{\"base_host_virt_addr\":140244305313792,\"size\":268435456,"
      "\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096}]",
      "  [{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,"
      "\"s\":\"]}\\\"[{\"},{\"base_host_virt_addr\":16384,\"size\":8192,"
      "\"offset\":4096,\"x\":[[{}]]}]",
  };
  for (size_t m = 0; m < sizeof msgs / sizeof *msgs; m++) {
    size_t len = strlen(msgs[m]);
    /* A heap copy of exactly k bytes, so reading past it is caught by
     * sanitizers and valgrind. */
    for (size_t k = 0; k < len; k++) {
      char *b = malloc(k ? k : 1);
      memcpy(b, msgs[m], k);
      int r = handshake_parse(b, k, 64, &H, ERR, sizeof ERR);
      free(b);
      ck_assert_msg(r == HS_INCOMPLETE,
                    "message %zu cut after %zu of %zu bytes gave %d (%s), "
                    "expected incomplete",
                    m, k, len, r, r == HS_INVALID ? ERR : "");
    }
    char *b = malloc(len);
    memcpy(b, msgs[m], len);
    int r = handshake_parse(b, len, 64, &H, ERR, sizeof ERR);
    free(b);
    ck_assert_msg(r == HS_COMPLETE, "message %zu whole gave %d (%s)", m, r,
                  ERR);
    ck_assert_msg(H.consumed == len, "message %zu: consumed %zu of %zu", m,
                  H.consumed, len);
  }
}
END_TEST

/* max_regions is a limit, not an exact count. */
START_TEST(max_regions_exact) {
  const char *two = "[{\"base_host_virt_addr\":4096,\"size\":4096,"
                    "\"offset\":0},{\"base_host_virt_addr\":12288,"
                    "\"size\":4096,\"offset\":4096}]";
  int r = handshake_parse(two, strlen(two), 2, &H, ERR, sizeof ERR);
  ck_assert_msg(r == HS_COMPLETE, "2 regions with max 2: %d (%s)", r, ERR);
  ck_assert_uint_eq(H.nregions, 2);
}
END_TEST

START_TEST(find_region) {
  struct ufk_region r[3] = {
      {.base = 0x10000, .size = 0x2000, .offset = 0},
      {.base = 0x20000, .size = 0x1000, .offset = 0x2000},
      {.base = 0x21000, .size = 0x1000, .offset = 0x3000}, /* adjacent */
  };
  struct {
    uint64_t addr;
    int want;
  } t[] = {
      {0, -1},       {0xffff, -1}, /* one below region 0 */
      {0x10000, 0},                /* its first byte */
      {0x10fff, 0},  {0x11fff, 0}, /* its last byte */
      {0x12000, -1},               /* one past it: the gap */
      {0x1ffff, -1},               /* last byte of the gap */
      {0x20000, 1},  {0x20fff, 1}, /* last byte of region 1... */
      {0x21000, 2}, /* ...and the first of the adjacent region 2 */
      {0x21fff, 2},  {0x22000, -1}, {UINT64_MAX, -1}, {UINT64_MAX - 0xfff, -1},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    int got = region_find(r, 3, t[i].addr);
    ck_assert_msg(got == t[i].want, "address 0x%llx: region %d, expected %d",
                  (unsigned long long)t[i].addr, got, t[i].want);
  }
  ck_assert_msg(region_find(r, 0, 0x10000) == -1,
                "no regions must find nothing");
  /* A region at the very top of the address space. */
  struct ufk_region top = {.base = UINT64_MAX - 0xfff, .size = 0x1000};
  ck_assert_msg(region_find(&top, 1, UINT64_MAX) == 0,
                "last byte of the address space not in the top region");
  ck_assert_msg(region_find(&top, 1, UINT64_MAX - 0x1000) == -1,
                "byte below the top region found in it");
}
END_TEST

int main(void) {
  Suite *s = suite_create("core-handshake");
  TCase *good = tcase_create("good");
  tcase_add_test(good, style_1_1);
  tcase_add_test(good, style_1_7);
  tcase_add_test(good, style_1_12);
  tcase_add_test(good, huge_pages);
  tcase_add_test(good, three_regions);
  tcase_add_test(good, unknown_keys);
  tcase_add_test(good, leftover_bytes);
  tcase_add_test(good, split_everywhere);
  tcase_add_test(good, max_regions_exact);
  suite_add_tcase(s, good);
  add_refusal_cases(s);
  TCase *find = tcase_create("find_region");
  tcase_add_test(find, find_region);
  suite_add_tcase(s, find);
  return ufk_check_run(s);
}

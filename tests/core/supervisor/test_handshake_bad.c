/* Unit tests of the handshake parser refusing input: malformed, not
 * strict JSON, or ambiguous, each with a reason naming what is wrong; and
 * input arriving a byte at a time scanned once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hstest.h"

struct bad {
  const char *what;
  const char *text;
  size_t len;           /* 0: strlen */
  uint32_t max_regions; /* 0: 64 */
  const char *words[3]; /* each must appear in the message */
};

/* Texts too long or too odd for a literal: NUL bytes, deep nesting. */
static char deep[4200], deep_in_region[4200], nul_between[256], nul_in_key[256],
    nul_lead[256];
static size_t nul_between_len, nul_in_key_len, nul_lead_len;

/* Joins parts into buf, each followed by one NUL except the last. */
static size_t join_nul(char *buf, const char *const *parts, int n) {
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    memcpy(buf + len, parts[i], strlen(parts[i]));
    len += strlen(parts[i]);
    if (i < n - 1) buf[len++] = 0;
  }
  return len;
}

static void build_inputs(void) {
  /* 2000 nested arrays: more than a JSON parser should follow. */
  memset(deep, '[', 2000);
  memset(deep + 2000, ']', 2000);
  deep[4000] = 0;
  int n = snprintf(deep_in_region, sizeof deep_in_region,
                   "[{\"base_host_virt_addr\":4096,\"size\":4096,"
                   "\"offset\":0,\"x\":");
  memset(deep_in_region + n, '[', 1500);
  memset(deep_in_region + n + 1500, ']', 1500);
  snprintf(deep_in_region + n + 3000, sizeof deep_in_region - n - 3000, "}]");
  nul_between_len =
      join_nul(nul_between,
               (const char *[]){"[{\"base_host_virt_addr\":4096,\"size\":4096,"
                                "\"offset\":0}",
                                ",{\"base_host_virt_addr\":16384,\"size\":4096,"
                                "\"offset\":4096}]"},
               2);
  /* "size\0x" is not the key "size". */
  nul_in_key_len =
      join_nul(nul_in_key,
               (const char *[]){"[{\"base_host_virt_addr\":4096,\"size",
                                "x\":4096,\"offset\":0}]"},
               2);
  /* NUL bytes ahead of an otherwise good array. */
  nul_lead_len =
      join_nul(nul_lead,
               (const char *[]){"", "",
                                "[{\"base_host_virt_addr\":4096,\"size\":4096,"
                                "\"offset\":0}]"},
               3);
}

/* Tries every case and prints every failure, so one run names them all;
 * fails if any case was not refused with its words, or if there are fewer
 * than min cases. */
static void check_cases(const struct bad *cases, size_t n, size_t min,
                        const char *what) {
  ck_assert_msg(n >= min, "only %zu malformed inputs", n);
  int failed = 0;
  char first[1024] = "";
  for (size_t i = 0; i < n; i++) {
    const struct bad *b = &cases[i];
    size_t len = b->len ? b->len : strlen(b->text);
    ERR[0] = 0;
    int r = handshake_parse(b->text, len, b->max_regions ? b->max_regions : 64,
                            &H, ERR, sizeof ERR);
    const char *why = r != HS_INVALID ? "not refused"
                      : !ERR[0] || strchr(ERR, '\n')
                          ? "the reason is not one line"
                          : NULL;
    for (int w = 0; !why && w < 3 && b->words[w]; w++)
      if (!strstr(ERR, b->words[w])) why = "the reason lacks an expected word";
    if (!why) continue;
    fprintf(stderr,
            "malformed input '%s': %s (result %d, message '%s', "
            "expected words '%s' '%s' '%s')\n",
            b->what, why, r, r == HS_INVALID ? ERR : "", b->words[0],
            b->words[1] ? b->words[1] : "", b->words[2] ? b->words[2] : "");
    if (!failed++)
      snprintf(first, sizeof first, "'%s': %s (result %d, message '%s')",
               b->what, why, r, r == HS_INVALID ? ERR : "");
  }
  ck_assert_msg(!failed,
                "%d of %zu %s were not refused with the expected "
                "reason; first: %s",
                failed, n, what, first);
}

#define OK "{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}"
#define REG(b, s, o)                                                           \
  "{\"base_host_virt_addr\":" b ",\"size\":" s ",\"offset\":" o
#define ONE(b, s, o, extra) "[" REG(b, s, o) extra "}]"

/* Input no Firecracker sends, each refused with the reason. */
START_TEST(malformed) {
  build_inputs();
  const struct bad cases[] = {
      {"object, not array",
       "{\"base_host_virt_addr\":4096}",
       0,
       0,
       {"not a JSON array"}},
      {"string", "\"[]\"", 0, 0, {"not a JSON array"}},
      {"number", "42", 0, 0, {"not a JSON array"}},
      {"text before the array", "x[]", 0, 0, {"not a JSON array"}},
      {"empty array", "[]", 0, 0, {"no regions"}},
      {"empty array with spaces", "[ \n ]", 0, 0, {"no regions"}},
      {"number element", "[1]", 0, 0, {"region 0", "not a JSON object"}},
      {"array element", "[" OK ",[]]", 0, 0, {"region 1", "not a JSON object"}},
      {"null element", "[null]", 0, 0, {"region 0", "not a JSON object"}},
      {"empty object",
       "[{}]",
       0,
       0,
       {"region 0", "base_host_virt_addr", "missing"}},
      {"missing base",
       "[{\"size\":4096,\"offset\":0}]",
       0,
       0,
       {"base_host_virt_addr", "missing"}},
      {"missing size",
       "[{\"base_host_virt_addr\":4096,\"offset\":0}]",
       0,
       0,
       {"size", "missing"}},
      {"missing offset",
       "[{\"base_host_virt_addr\":4096,\"size\":4096}]",
       0,
       0,
       {"offset", "missing"}},
      {"missing offset in region 2",
       "[" OK "," REG("16384", "4096",
                      "4096") "},"
                              "{\"base_host_virt_addr\":65536,\"size\":4096}]",
       0,
       0,
       {"region 2", "offset", "missing"}},
      {"key in another case",
       "[{\"Base_host_virt_addr\":4096,\"size\":4096,"
       "\"offset\":0}]",
       0,
       0,
       {"base_host_virt_addr", "missing"}},
      {"negative base",
       ONE("-4096", "4096", "0", ""),
       0,
       0,
       {"base_host_virt_addr", "not an unsigned integer"}},
      {"negative offset",
       ONE("4096", "4096", "-4096", ""),
       0,
       0,
       {"offset", "not an unsigned integer"}},
      {"fractional size",
       ONE("4096", "4096.5", "0", ""),
       0,
       0,
       {"size", "not an unsigned integer"}},
      {"string size",
       ONE("4096", "\"4096\"", "0", ""),
       0,
       0,
       {"size", "not an unsigned integer"}},
      {"boolean offset",
       ONE("4096", "4096", "false", ""),
       0,
       0,
       {"offset", "not an unsigned integer"}},
      {"null base",
       ONE("null", "4096", "0", ""),
       0,
       0,
       {"base_host_virt_addr", "not an unsigned integer"}},
      {"object size",
       ONE("4096", "{}", "0", ""),
       0,
       0,
       {"size", "not an unsigned integer"}},
      {"size 2^53 + 4096 (past exact doubles)",
       ONE("4096", "9007199254745088", "0", ""),
       0,
       0,
       {"size", "not an unsigned integer"}},
      {"base 2^53",
       ONE("9007199254740992", "4096", "0", ""),
       0,
       0,
       {"base_host_virt_addr", "not an unsigned integer"}},
      {"base + size past 2^64",
       ONE("18446744073709547520", "8192", "0", ""),
       0,
       0,
       {"base_host_virt_addr"}},
      {"offset 1e300",
       ONE("4096", "4096", "1e300", ""),
       0,
       0,
       {"offset", "not an unsigned integer"}},
      {"page size 8192",
       ONE("8192", "8192", "0", ",\"page_size\":8192"),
       0,
       0,
       {"region 0", "8192", "neither 4096 nor 2097152"}},
      {"page_size_kib in KiB (4)",
       ONE("4096", "4096", "0", ",\"page_size_kib\":4"),
       0,
       0,
       {"page size 4 ", "neither"}},
      {"page size 1 GiB",
       ONE("1073741824", "1073741824", "0", ",\"page_size\":1073741824"),
       0,
       0,
       {"1073741824", "neither"}},
      {"page size 0",
       ONE("4096", "4096", "0", ",\"page_size\":0"),
       0,
       0,
       {"page size 0 ", "neither"}},
      {"page size as string",
       ONE("4096", "4096", "0", ",\"page_size\":\"4096\""),
       0,
       0,
       {"page_size", "not an unsigned integer"}},
      {"page_size_kib negative",
       ONE("4096", "4096", "0", ",\"page_size_kib\":-4096"),
       0,
       0,
       {"page_size_kib", "not an unsigned integer"}},
      {"page_size and page_size_kib differ",
       ONE("2097152", "2097152", "0",
           ",\"page_size\":4096,\"page_size_kib\":2097152"),
       0,
       0,
       {"page_size 4096", "page_size_kib 2097152", "differ"}},
      {"regions with different page sizes",
       "[" REG("2097152", "2097152", "0") ",\"page_size\":2097152}," REG(
           "8388608", "4096", "2097152") ",\"page_size\":4096}]",
       0,
       0,
       {"region 1", "4096", "region 0's 2097152"}},
      {"region 1 without a page size after a 2 MiB region 0",
       "[" REG("2097152", "2097152", "0") ",\"page_size_kib\":2097152}," REG(
           "8388608", "4096", "2097152") "}]",
       0,
       0,
       {"region 1", "differs"}},
      {"misaligned base",
       ONE("4097", "4096", "0", ""),
       0,
       0,
       {"region 0", "base 0x1001", "not aligned to the page size 4096"}},
      {"misaligned size",
       ONE("4096", "6144", "0", ""),
       0,
       0,
       {"size 6144", "not aligned"}},
      {"misaligned offset",
       ONE("4096", "4096", "512", ""),
       0,
       0,
       {"offset 512", "not aligned"}},
      {"base aligned to 4 KiB only, 2 MiB pages",
       ONE("4096", "2097152", "0", ",\"page_size\":2097152"),
       0,
       0,
       {"not aligned to the page size 2097152"}},
      {"offset aligned to 4 KiB only, 2 MiB pages",
       ONE("2097152", "2097152", "4096", ",\"page_size_kib\":2097152"),
       0,
       0,
       {"offset 4096", "2097152"}},
      {"zero size", ONE("4096", "0", "0", ""), 0, 0, {"region 0", "size is 0"}},
      {"zero size in region 1",
       "[" OK "," REG("16384", "0", "4096") "}]",
       0,
       0,
       {"region 1", "size is 0"}},
      {"overlapping regions",
       "[" REG("4096", "16384", "0") "}," REG("12288", "4096", "16384") "}]",
       0,
       0,
       {"0x1000", "0x3000", "overlap"}},
      {"the same region twice", "[" OK "," OK "]", 0, 0, {"overlap"}},
      {"overlap out of order",
       "[" REG("65536", "8192", "0") "}," REG("4096", "4096", "8192") "}," REG(
           "61440", "8192", "12288") "}]",
       0,
       0,
       {"0xf000", "0x10000", "overlap"}},
      {"3 regions, max 2",
       "[" OK
       "," REG("16384", "4096", "4096") "}," REG("65536", "4096", "8192") "}]",
       0,
       2,
       {"3 regions", "more than the 2 allowed"}},
      {"2 regions, max 1",
       "[" OK "," REG("16384", "4096", "4096") "}]",
       0,
       1,
       {"2 regions", "1 allowed"}},
      {"trailing comma in the array", "[" OK ",]", 0, 0, {"not valid JSON"}},
      {"garbage inside the array", "[" OK " x]", 0, 0, {"not valid JSON"}},
      {"missing comma between regions",
       "[" OK REG("16384", "4096", "4096") "}]",
       0,
       0,
       {"not valid JSON"}},
      {"unquoted keys",
       "[{base_host_virt_addr:4096,size:4096,offset:0}]",
       0,
       0,
       {"not valid JSON"}},
      {"single quotes",
       "[{'base_host_virt_addr':4096}]",
       0,
       0,
       {"not valid JSON"}},
      {"mismatched brackets", "[{\"size\":4096]}", 0, 0, {"not valid JSON"}},
      {"2000 nested arrays", deep, 0, 0, {"not valid JSON"}},
      {"1500 nested arrays inside a region",
       deep_in_region,
       0,
       0,
       {"not valid JSON"}},
      {"invalid escape \\x",
       ONE("4096", "4096", "0", ",\"k\":\"\\x41\""),
       0,
       0,
       {"not valid JSON"}},
      {"truncated \\u escape",
       ONE("4096", "4096", "0", ",\"k\":\"\\u12\""),
       0,
       0,
       {"not valid JSON"}},
      {"lone low surrogate",
       ONE("4096", "4096", "0", ",\"k\":\"\\udc00\""),
       0,
       0,
       {"not valid JSON"}},
  };
  check_cases(cases, sizeof cases / sizeof *cases, 25, "malformed inputs");
}
END_TEST

/* JSON is UTF-8 text without raw control characters (RFC 8259 sections 7
 * and 8.1); serde_json never writes either.  A parser that skips a NUL as
 * white space, or ends a key at a NUL, reads bytes other parsers would
 * refuse, and two parsers then disagree about what a peer sent. */
START_TEST(strict_json) {
  build_inputs();
  const struct bad cases[] = {
      {"NUL byte between regions", nul_between, nul_between_len, 0, {"JSON"}},
      {"NUL byte inside a key", nul_in_key, nul_in_key_len, 0, {"JSON"}},
      {"NUL bytes before the array", nul_lead, nul_lead_len, 0, {"JSON"}},
      /* A lone continuation byte; an overlong '/'; 0xff never occurs. */
      {"invalid UTF-8 in a key",
       ONE("4096", "4096", "0", ",\"k\x80\":1"),
       0,
       0,
       {"UTF-8"}},
      {"invalid UTF-8 in an ignored value",
       ONE("4096", "4096", "0", ",\"k\":\"\xc0\xaf\xff\""),
       0,
       0,
       {"UTF-8"}},
      /* Well-formed in shape but not UTF-8 (RFC 3629): overlong 3- and
       * 4-byte forms, a UTF-16 surrogate, a code point past U+10FFFF. */
      {"overlong 3-byte '/' in a value",
       ONE("4096", "4096", "0", ",\"k\":\"\xe0\x80\xaf\""),
       0,
       0,
       {"UTF-8"}},
      {"overlong 4-byte '/' in a value",
       ONE("4096", "4096", "0", ",\"k\":\"\xf0\x80\x80\xaf\""),
       0,
       0,
       {"UTF-8"}},
      {"UTF-16 surrogate U+D800 in a value",
       ONE("4096", "4096", "0", ",\"k\":\"\xed\xa0\x80\""),
       0,
       0,
       {"UTF-8"}},
      {"code point U+110000 in a value",
       ONE("4096", "4096", "0", ",\"k\":\"\xf4\x90\x80\x80\""),
       0,
       0,
       {"UTF-8"}},
      {"raw newline inside a string",
       ONE("4096", "4096", "0", ",\"k\":\"a\nb\""),
       0,
       0,
       {"JSON"}},
  };
  /* cJSON alone accepts all of these: it skips every byte up to 0x20,
   * ends keys at a NUL and copies strings without checking UTF-8 or
   * control characters; core/handshake.c must check the bytes itself. */
  check_cases(cases, sizeof cases / sizeof *cases, 10,
              "inputs that are not strict JSON (NUL bytes, bytes that are not "
              "UTF-8 by RFC 3629, raw control characters)");
}
END_TEST

/* A key given twice is read one way by cJSON (the first) and maybe the
 * other way by another parser; a \u0000 escape ends the string early in
 * C.  Both are refused with what and where. */
START_TEST(ambiguous) {
  const struct bad cases[] = {
      {"size given twice",
       ONE("4096", "4096", "0", ",\"size\":8192"),
       0,
       0,
       {"region 0", "\"size\"", "twice"}},
      {"an unknown key given twice",
       ONE("4096", "4096", "0", ",\"x\":1,\"x\":2"),
       0,
       0,
       {"region 0", "\"x\"", "twice"}},
      {"\\u0000 inside a value",
       ONE("4096", "4096", "0", ",\"k\":\"a\\u0000b\""),
       0,
       0,
       {"\\u0000", "byte"}},
      {"\\u0000 inside a key",
       ONE("4096", "4096", "0", ",\"size\\u0000x\":1"),
       0,
       0,
       {"\\u0000", "byte"}},
  };
  check_cases(cases, sizeof cases / sizeof *cases, 4,
              "ambiguous inputs (duplicate keys, \\u0000 in strings)");
  /* An escaped backslash before "u0000" is not an escape of it. */
  complete("[" REG("4096", "4096", "0") ",\"k\":\"\\\\u0000\"}]", 4096, 1, 0);
}
END_TEST

/* A handshake arriving a byte at a time: every byte is scanned once and
 * the JSON parsed once, when the array closes (not once per read, from
 * the start, as a dripping peer could make it cost its length squared). */
START_TEST(fed_a_byte_at_a_time) {
  char text[8192];
  int n = snprintf(text, sizeof text, "[");
  while (n < 6000)
    n += snprintf(text + n, sizeof text - (size_t)n, " ");
  n += snprintf(text + n, sizeof text - (size_t)n, "%s]", OK);
  struct hs_scan sc = {0};
  int r = HS_INCOMPLETE;
  for (int len = 1; len <= n && r == HS_INCOMPLETE; len++)
    r = handshake_feed(&sc, text, (size_t)len, 64, &H, ERR, sizeof ERR);
  size_t scanned = sc.examined;
  ck_assert_msg(r == HS_COMPLETE, "fed a byte at a time: %d (%s)", r, ERR);
  ck_assert_msg(scanned == (size_t)n, "%zu bytes scanned for %d received",
                scanned, n);
  ck_assert_msg(sc.parses == 1, "parsed %u times, expected once", sc.parses);
  ck_assert_msg(H.consumed == (size_t)n, "consumed %zu of %d", H.consumed, n);
  /* Not an array: known at its first byte, however long the rest. */
  struct hs_scan bad = {0};
  r = handshake_feed(&bad, "  {", 3, 64, &H, ERR, sizeof ERR);
  ck_assert_msg(r == HS_INVALID && bad.parses == 0, "'  {': %d after %u parses",
                r, bad.parses);
}
END_TEST

void add_refusal_cases(Suite *s) {
  TCase *bad = tcase_create("malformed");
  tcase_add_test(bad, malformed);
  suite_add_tcase(s, bad);
  TCase *strict = tcase_create("strict_json");
  tcase_add_test(strict, strict_json);
  suite_add_tcase(s, strict);
  TCase *amb = tcase_create("ambiguous");
  tcase_add_test(amb, ambiguous);
  tcase_add_test(amb, fed_a_byte_at_a_time);
  suite_add_tcase(s, amb);
}

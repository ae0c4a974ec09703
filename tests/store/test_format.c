/* Unit tests of the store format: every object round-trips, and damaged or
 * out-of-range fields are refused with a message naming the field and its
 * byte.  Chunks are test_chunk.c's. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "checkrun.h"
#include "index.h"
#include "info.h"
#include "keys.h"
#include "manifest.h"
#include "object.h"
#include "pack.h"

#define CS 16384u

static struct ufk_store_err err;
static const struct ufk_store_keys plain; /* a plain store's */

/* A manifest of 3 chunks: two in pack 0, one zero chunk. */
static void small_manifest(struct ufk_store_manifest *m) {
  memset(m, 0, sizeof *m);
  m->chunk_size = CS;
  m->image_size = 2 * CS + 8192;
  m->nchunks = 3;
  m->npacks = 1;
  m->packs = calloc(1, UFK_STORE_ID);
  m->packs[0][0] = 0x42;
  m->refs = calloc(3, sizeof *m->refs);
  memset(m->refs[0].id, 1, UFK_STORE_ID);
  memset(m->refs[1].id, 2, UFK_STORE_ID);
  m->refs[2].pack = UFK_STORE_NO_PACK;
}

static uint8_t *manifest_bytes(size_t *len) {
  struct ufk_store_manifest m;
  small_manifest(&m);
  *len = ufk_store_manifest_size(&m);
  uint8_t *b = malloc(*len);
  ufk_store_manifest_put(&m, &plain, b);
  ufk_store_manifest_free(&m);
  return b;
}

/* Parses b after setting field `at` (4 bytes) to v and fixing the sum. */
static const char *manifest_err(uint8_t *b, size_t len, size_t at, uint32_t v) {
  ufk_put32(b + at, v);
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  struct ufk_store_manifest m;
  if (ufk_store_manifest_parse(b, len, "snapshots/t", &plain, &m, &err) == 0) {
    ufk_store_manifest_free(&m);
    return "";
  }
  return err.msg;
}

START_TEST(manifest_round_trip) {
  size_t len;
  uint8_t *b = manifest_bytes(&len);
  struct ufk_store_manifest m;
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "m", &plain, &m, &err), 0);
  ck_assert_uint_eq(m.nchunks, 3);
  ck_assert_uint_eq(m.image_size, 2 * CS + 8192);
  ck_assert_uint_eq(m.refs[2].pack, UFK_STORE_NO_PACK);
  ck_assert_uint_eq(m.refs[1].id[5], 2);
  uint8_t *again = malloc(len);
  ufk_store_manifest_put(&m, &plain, again);
  ck_assert_mem_eq(b, again, len);
  ufk_store_manifest_free(&m);
  free(again);
  free(b);
}
END_TEST

START_TEST(manifest_refused) {
  size_t len;
  uint8_t *b = manifest_bytes(&len);
  ck_assert_str_eq(manifest_err(b, len, 8, 3),
                   "snapshots/t: byte 8 (version): 3 is not a version this "
                   "build reads (1, 2)");
  ufk_put32(b + 8, 2);
  ck_assert_ptr_nonnull(strstr(manifest_err(b, len, 24, 12288),
                               "byte 24 "
                               "(chunk size)"));
  ufk_put32(b + 24, CS);
  ck_assert_ptr_nonnull(
      strstr(manifest_err(b, len, 32, 4), "byte 32 (chunk count)"));
  ufk_put32(b + 32, 3);
  size_t ref1 = UFK_STORE_MANIFEST_HEAD + UFK_STORE_ID + UFK_STORE_REF_SIZE;
  ck_assert_str_eq(manifest_err(b, len, ref1, 1),
                   "snapshots/t: byte 116 (chunk 1): pack 1 of 1 packs");
  ufk_put32(b + ref1, 0);
  ck_assert_str_eq(manifest_err(b, len, 12, 0x10),
                   "snapshots/t: byte 12 (flags): unknown flags 0x10");
  ufk_put32(b + 12, 0);
  ck_assert_str_eq(manifest_err(b, len, 8, 2), "");
  b[70] ^= 1; /* no sum fix: damage */
  struct ufk_store_manifest m;
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "m", &plain, &m, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "(checksum)"));
  for (size_t cut = 0; cut < len; cut += 7)
    ck_assert_int_eq(ufk_store_manifest_parse(b, cut, "m", &plain, &m, &err),
                     -1);
  free(b);
}
END_TEST

static void small_index(struct ufk_store_index *x) {
  memset(x, 0, sizeof *x);
  x->chunk_size = CS;
  x->pack_bytes = UFK_STORE_PACK_HEAD + 3 * CS;
  x->nentries = 3;
  x->entries = calloc(3, sizeof *x->entries);
  for (int i = 0; i < 3; i++) {
    memset(x->entries[i].id, 9 - i, UFK_STORE_ID);
    x->entries[i].offset = UFK_STORE_PACK_HEAD + (uint64_t)i * CS;
    x->entries[i].raw_len = CS;
    x->entries[i].stored_len = i == 1 ? 100 : CS;
    x->entries[i].codec = i == 1 ? UFK_CODEC_ZSTD : UFK_CODEC_RAW;
  }
}

static const char *index_err(uint8_t *b, size_t len, size_t at, uint32_t v) {
  ufk_put32(b + at, v);
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  struct ufk_store_index x;
  if (ufk_store_index_parse(b, len, "packs/p.idx", &plain, &x, &err) == 0) {
    ufk_store_index_free(&x);
    return "";
  }
  return err.msg;
}

START_TEST(index_round_trip_and_refused) {
  struct ufk_store_index x;
  small_index(&x);
  size_t len = ufk_store_index_size(&x);
  uint8_t *b = malloc(len);
  ufk_store_index_put(&x, &plain, b);
  ufk_store_index_free(&x);
  ck_assert_int_eq(ufk_store_index_parse(b, len, "i", &plain, &x, &err), 0);
  ck_assert_uint_eq(x.entries[0].id[0], 7); /* sorted */
  uint8_t id[UFK_STORE_ID];
  memset(id, 8, sizeof id);
  ck_assert_uint_eq(ufk_store_index_find(&x, id)->codec, UFK_CODEC_ZSTD);
  memset(id, 5, sizeof id);
  ck_assert_ptr_null(ufk_store_index_find(&x, id));
  ufk_store_index_free(&x);
  size_t e1 = UFK_STORE_INDEX_HEAD + UFK_STORE_ENTRY_SIZE;
  ck_assert_str_eq(index_err(b, len, e1 + 40, CS + 1),
                   "packs/p.idx: byte 160 (entry stored length): 16385 for a "
                   "compressed chunk of 16384 bytes");
  ufk_put32(b + e1 + 40, 100);
  ck_assert_str_eq(index_err(b, len, e1 + 32, 3 * CS),
                   "packs/p.idx: byte 152 (entry offset): 49152+100 is "
                   "outside the pack's data (64..49216)");
  ufk_put32(b + e1 + 32, UFK_STORE_PACK_HEAD + CS);
  ck_assert_ptr_nonnull(
      strstr(index_err(b, len, e1 + 48, 3), "byte 168 (entry codec)"));
  ufk_put32(b + e1 + 48, 1);
  ck_assert_ptr_nonnull(strstr(index_err(b, len, e1, 0x01010101),
                               "byte 120 (entry 1 id): not above"));
  ufk_put32(b + e1, 0x08080808);
  ck_assert_ptr_nonnull(
      strstr(index_err(b, len, e1 + 44, 100), "byte 164 (entry length)"));
  for (size_t cut = 0; cut < len; cut += 5)
    ck_assert_int_eq(ufk_store_index_parse(b, cut, "i", &plain, &x, &err), -1);
  free(b);
}
END_TEST

static void keys_of(struct ufk_store_keys *k, uint8_t fill) {
  uint8_t master[UFK_STORE_ID];
  memset(master, fill, sizeof master);
  ufk_store_keys_from(k, master);
}

/* An object as version 1 would have it: no MAC, its own checksum. */
static size_t to_version_1(uint8_t *b, size_t len) {
  ufk_put32(b + 8, 1);
  len -= UFK_STORE_ID;
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  return len;
}

/* A forger without the key: a changed chunk reference with the checksum
 * made right is refused by the MAC; so is the object under another key;
 * a reader without the key (NULL) checks no MAC. */
START_TEST(manifest_mac) {
  struct ufk_store_keys k, other;
  keys_of(&k, 0x11);
  keys_of(&other, 0x22);
  struct ufk_store_manifest m;
  small_manifest(&m);
  m.flags = UFK_STORE_F_ENCRYPTED;
  size_t len = ufk_store_manifest_size(&m);
  uint8_t *b = malloc(len);
  ufk_store_manifest_put(&m, &k, b);
  ufk_store_manifest_free(&m);
  ck_assert_uint_eq(ufk_le32(b + 8), 2);
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &k, &m, &err), 0);
  ck_assert_uint_eq(m.version, 2);
  ufk_store_manifest_free(&m);
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &other, &m, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "(MAC)"));
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &plain, &m, &err), -1);
  ck_assert_str_eq(err.msg, "s: byte 12 (flags): encrypted, in a plain store");

  size_t ref0 = UFK_STORE_MANIFEST_HEAD + UFK_STORE_ID;
  b[ref0 + 4] ^= 0xff; /* chunk 0's id, then a right checksum */
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  ck_assert_int_eq(
      ufk_store_manifest_parse(b, len, "snapshots/g1", &k, &m, &err), -1);
  ck_assert_str_eq(err.msg,
                   "snapshots/g1: byte 188 (MAC): not the HMAC-SHA-256 of the "
                   "object under the store's key; it was not written with "
                   "this key (forged, or of another store)");
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", NULL, &m, &err), 0);
  ufk_store_manifest_free(&m);

  len = to_version_1(b, len);
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &k, &m, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "s: byte 8 (version): version 1 "
                                        "carries no MAC"));
  free(b);
  ufk_store_keys_wipe(&k);
  ufk_store_keys_wipe(&other);
}
END_TEST

/* Version 1 objects of a plain store are still read; a plain version 2
 * object's MAC is zero. */
START_TEST(plain_version_1_read) {
  size_t len;
  uint8_t *b = manifest_bytes(&len);
  struct ufk_store_manifest m;
  ck_assert(ufk_store_is_zero(b + len - 2 * UFK_STORE_ID, UFK_STORE_ID));
  b[len - 2 * UFK_STORE_ID] = 1;
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &plain, &m, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "(MAC): not zero in a plain store"));
  len = to_version_1(b, len);
  ck_assert_int_eq(ufk_store_manifest_parse(b, len, "s", &plain, &m, &err), 0);
  ck_assert_uint_eq(m.version, 1);
  ck_assert_uint_eq(m.refs[1].id[5], 2);
  ufk_store_manifest_free(&m);
  free(b);
}
END_TEST

START_TEST(index_mac) {
  struct ufk_store_keys k;
  keys_of(&k, 0x11);
  struct ufk_store_index x;
  small_index(&x);
  x.flags = UFK_STORE_F_ENCRYPTED;
  x.pack_bytes += 3 * UFK_STORE_SEAL;
  for (int i = 0; i < 3; i++)
    x.entries[i].stored_len += UFK_STORE_SEAL;
  size_t len = ufk_store_index_size(&x);
  uint8_t *b = malloc(len);
  ufk_store_index_put(&x, &k, b);
  ufk_store_index_free(&x);
  ck_assert_int_eq(ufk_store_index_parse(b, len, "i", &k, &x, &err), 0);
  ufk_store_index_free(&x);
  /* Entry 0 moved to another chunk's bytes, checksum made right. */
  ufk_put64(b + UFK_STORE_INDEX_HEAD + 32, UFK_STORE_PACK_HEAD + CS);
  ufk_store_sum_put(b, len - UFK_STORE_ID);
  ck_assert_int_eq(ufk_store_index_parse(b, len, "packs/p.idx", &k, &x, &err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "packs/p.idx: byte 232 (MAC): not the "
                                        "HMAC-SHA-256"));
  len = to_version_1(b, len);
  ck_assert_int_eq(ufk_store_index_parse(b, len, "packs/p.idx", &k, &x, &err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "version 1 carries no MAC"));
  free(b);
  ufk_store_keys_wipe(&k);
}
END_TEST

START_TEST(pack_head) {
  struct ufk_store_index x;
  small_index(&x);
  struct ufk_store_pack_head p = {.nchunks = 3, .pack_bytes = x.pack_bytes};
  uint8_t b[UFK_STORE_PACK_HEAD];
  ufk_store_pack_put(&p, b);
  struct ufk_store_pack_head q;
  ck_assert_int_eq(ufk_store_pack_parse(b, sizeof b, "p", &q, &err), 0);
  ck_assert_int_eq(ufk_store_pack_match(&q, &x, x.pack_bytes, "p", &err), 0);
  ck_assert_int_eq(
      ufk_store_pack_match(&q, &x, x.pack_bytes - 1, "packs/p.pack", &err), -1);
  ck_assert_str_eq(err.msg, "packs/p.pack: 49215 bytes, its header says "
                            "49216 (truncated)");
  ck_assert_int_eq(ufk_store_pack_parse(b, 40, "p", &q, &err), -1);
  ck_assert_str_eq(err.msg, "p: 40 bytes is too short for a pack header (64)");
  ufk_put32(b + 48, 0xffffffff);
  ufk_put64(b + 56, 100);
  ck_assert_int_eq(ufk_store_pack_parse(b, sizeof b, "p", &q, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "byte 48 (chunk count)"));
  ufk_store_index_free(&x);
}
END_TEST

START_TEST(info_round_trip) {
  struct ufk_store_info in = {.flags = 0, .chunk_size = 65536}, out;
  uint8_t b[UFK_STORE_INFO_SIZE];
  ufk_store_info_put(&in, b);
  ck_assert_int_eq(ufk_store_info_parse(b, sizeof b, "store", &out, &err), 0);
  ck_assert_uint_eq(out.chunk_size, 65536);
  ufk_put32(b + 12, UFK_STORE_F_ENCRYPTED);
  ufk_store_sum_put(b, sizeof b - UFK_STORE_ID);
  ck_assert_int_eq(ufk_store_info_parse(b, sizeof b, "store", &out, &err), -1);
  ck_assert_str_eq(err.msg, "store: byte 24 (key check): zero for a store "
                            "with encryption");
  ck_assert_int_eq(ufk_store_info_parse(b, 10, "store", &out, &err), -1);
  ufk_put32(b + 12, UFK_STORE_F_PAGE_BLOCKS);
  ufk_store_sum_put(b, sizeof b - UFK_STORE_ID);
  ck_assert_int_eq(ufk_store_info_parse(b, sizeof b, "store", &out, &err), -1);
  ck_assert_str_eq(err.msg, "store: byte 12 (flags): page blocks (bit 2) "
                            "without page sums (bit 1)");
}
END_TEST

int main(void) {
  Suite *s = suite_create("store-format");
  TCase *tc = tcase_create("format");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, manifest_round_trip);
  tcase_add_test(tc, manifest_refused);
  tcase_add_test(tc, index_round_trip_and_refused);
  tcase_add_test(tc, manifest_mac);
  tcase_add_test(tc, plain_version_1_read);
  tcase_add_test(tc, index_mac);
  tcase_add_test(tc, pack_head);
  tcase_add_test(tc, info_round_trip);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

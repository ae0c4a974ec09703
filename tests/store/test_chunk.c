/* Unit tests of chunks (common/store/chunk.c): they decode only to the
 * bytes their id names, plain and sealed, checked whole, by page sums and
 * from page blocks, and one flipped bit is refused. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "checkrun.h"
#include "chunk.h"
#include "keys.h"
#include "object.h"

#define CS 16384u

static struct ufk_store_err err;

static void fill(uint8_t *b, size_t n, unsigned seed, int compressible) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    b[i] = compressible ? (uint8_t)("abcdefgh"[(i / 64) % 8] + (i % 3))
                        : (uint8_t)(seed >> 16);
  }
}

/* raw (CS bytes, fill's seed and kind) encoded for k into stored
 * (ufk_store_encode_bound(CS) bytes), named by its id; its entry in *e. */
static void encode(const struct ufk_store_keys *k, int codec, int level,
                   unsigned seed, int comp, uint8_t *raw, uint8_t *stored,
                   struct ufk_store_entry *e) {
  uint8_t id[UFK_STORE_ID];
  fill(raw, CS, seed, comp);
  ufk_store_chunk_id(k, raw, CS, id);
  ck_assert_int_eq(ufk_store_chunk_encode(k, codec, level, id, NULL, raw, CS,
                                          stored, e, &err),
                   0);
}

static void round_trip_at(const struct ufk_store_keys *k, int codec, int level,
                          int comp) {
  uint8_t raw[CS], out[CS];
  uint8_t *stored = malloc(ufk_store_encode_bound(CS));
  struct ufk_store_entry e;
  encode(k, codec, level, 7, comp, raw, stored, &e);
  ck_assert_uint_eq(e.codec, comp ? codec : UFK_CODEC_RAW);
  if (comp) ck_assert_uint_lt(e.stored_len, CS / 4);
  uint8_t *copy = malloc(e.stored_len);
  memcpy(copy, stored, e.stored_len);
  ck_assert_int_eq(ufk_store_chunk_decode(k, &e, copy, out, &err), 0);
  ck_assert_mem_eq(raw, out, CS);
  /* One bit flipped anywhere in the stored bytes is refused, unless the
   * codec ignores that bit (LZ4 does some in its last sequence): then the
   * bytes decoded are the chunk's, checked. */
  int tried = 0, refused = 0;
  for (uint32_t bit = 0; bit < e.stored_len * 8;
       bit += 8 * e.stored_len / 61 + 1) {
    memcpy(copy, stored, e.stored_len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    memset(out, 0, CS);
    tried++;
    if (ufk_store_chunk_decode(k, &e, copy, out, &err) < 0)
      refused++;
    else
      ck_assert_mem_eq(raw, out, CS);
  }
  ck_assert_int_ge(refused, tried - 2);
  free(copy);
  free(stored);
}

/* LZ4 at its fast level, LZ4HC's lowest and highest (one block format);
 * zstd at the importer's default. */
static void round_trip(const struct ufk_store_keys *k, int codec, int comp) {
  static const int lz4[] = {1, 2, UFK_STORE_LZ4_LEVEL_MAX, 99};
  if (codec != UFK_CODEC_LZ4) {
    round_trip_at(k, codec, 3, comp);
    return;
  }
  for (size_t i = 0; i < sizeof lz4 / sizeof *lz4; i++)
    round_trip_at(k, codec, lz4[i], comp);
}

/* Round trips with every codec, of bytes that compress and bytes that do
 * not. */
static void every_codec(const struct ufk_store_keys *k) {
  for (int codec = 0; codec <= UFK_CODEC_LZ4; codec++) {
    round_trip(k, codec, codec != UFK_CODEC_RAW);
    round_trip(k, codec, 0);
  }
}

/* The keys of a master key given as 64 hex digits, through variable var. */
static void keys_from_env(struct ufk_store_keys *k, const char *var,
                          const char *hex) {
  setenv(var, hex, 1);
  ck_assert_int_eq(ufk_store_keys_load(k, NULL, var, &err), 0);
}

START_TEST(chunks_plain) {
  struct ufk_store_keys k = {0};
  every_codec(&k);
}
END_TEST

START_TEST(chunks_encrypted) {
  struct ufk_store_keys k, other;
  keys_from_env(&k, "T_KEY",
                "000102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1f");
  keys_from_env(&other, "T_OTHER",
                "ff0102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1f");
  every_codec(&k);
  /* Equal bytes get other ids under another key, and do not decode. */
  uint8_t raw[CS], out[CS], id[UFK_STORE_ID], plain_id[UFK_STORE_ID];
  uint8_t stored[CS + 4096];
  fill(raw, CS, 3, 1);
  struct ufk_store_keys none = {0};
  ufk_store_chunk_id(&k, raw, CS, id);
  ufk_store_chunk_id(&none, raw, CS, plain_id);
  ck_assert_mem_ne(id, plain_id, UFK_STORE_ID);
  struct ufk_store_entry e;
  ufk_store_chunk_encode(&k, UFK_CODEC_ZSTD, 3, id, NULL, raw, CS, stored, &e,
                         &err);
  ck_assert_int_eq(ufk_store_chunk_decode(&other, &e, stored, out, &err), -1);
  ck_assert_str_eq(err.msg, "AES-256-GCM tag does not match (a wrong key "
                            "or damaged bytes)");
  /* A sealed raw chunk whose index claims more bytes than the chunk holds
   * is refused before anything is decrypted into out (guarded here). */
  uint8_t guarded[CS + 64];
  memset(guarded, 0xa5, sizeof guarded);
  ufk_store_chunk_encode(&k, UFK_CODEC_RAW, 0, id, NULL, raw, CS, stored, &e,
                         &err);
  ck_assert_uint_eq(e.codec, UFK_CODEC_RAW);
  e.stored_len += 64;
  ck_assert_int_eq(ufk_store_chunk_decode(&k, &e, stored, guarded, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "cannot hold a chunk"));
  for (size_t i = 0; i < sizeof guarded; i++)
    ck_assert_uint_eq(guarded[i], 0xa5);
  struct ufk_store_info info = {.flags = UFK_STORE_F_ENCRYPTED,
                                .chunk_size = CS};
  memcpy(info.key_check, k.check, UFK_STORE_ID);
  ck_assert_int_eq(ufk_store_keys_match(&k, &info, "store", &err), 0);
  ck_assert_int_eq(ufk_store_keys_match(&other, &info, "store", &err), -1);
  ck_assert_str_eq(err.msg, "store: byte 24 (key check): the key given is not "
                            "the store's key");
  ck_assert_int_eq(ufk_store_keys_match(&none, &info, "store", &err), -1);
  ufk_store_keys_wipe(&k);
  ufk_store_keys_wipe(&other);
  ck_assert_int_eq(ufk_store_keys_load(&other, NULL, "T_UNSET_KEY", &err), -1);
  setenv("T_BAD", "12", 1);
  ck_assert_int_eq(ufk_store_keys_load(&other, NULL, "T_BAD", &err), -1);
  ck_assert_str_eq(err.msg, "key variable T_BAD: not 64 hex digits");
}
END_TEST

/* What an encrypted store's id is: HMAC-SHA-256 under its id key. */
static int id_is_hmac(const struct ufk_store_keys *k, unsigned seed) {
  uint8_t raw[CS], id[UFK_STORE_ID], want[UFK_STORE_ID];
  unsigned int n = UFK_STORE_ID;
  fill(raw, CS, seed, 0);
  ufk_store_chunk_id(k, raw, CS, id);
  HMAC(EVP_sha256(), k->id_key, UFK_STORE_ID, raw, CS, want, &n);
  return !memcmp(id, want, UFK_STORE_ID);
}

static void *ids_on_a_thread(void *arg) {
  const struct ufk_store_keys *k = arg;
  for (unsigned i = 0; i < 300; i++)
    if (!id_is_hmac(&k[i % 2], i)) return (void *)1;
  return NULL;
}

/* Ids come from a context keyed once, copied for each: under two keys in
 * turn and from four threads at once, each is the HMAC keyed anew. */
START_TEST(ids_keyed_once) {
  struct ufk_store_keys k[2];
  keys_from_env(&k[0], "T_ID_KEY",
                "606162636465666768696a6b6c6d6e6f"
                "707172737475767778797a7b7c7d7e7f");
  keys_from_env(&k[1], "T_ID_OTHER",
                "808182838485868788898a8b8c8d8e8f"
                "909192939495969798999a9b9c9d9e9f");
  ck_assert_ptr_nonnull(k[0].id_mac);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, ids_on_a_thread, k), 0);
  for (int i = 0; i < 4; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    ck_assert_ptr_null(bad);
  }
  ufk_store_keys_wipe(&k[0]);
  ufk_store_keys_wipe(&k[1]);
}
END_TEST

/* Page sums: every round trip as above, with ids over page sums. */
START_TEST(chunks_page_sums) {
  struct ufk_store_keys k = {.page_sums = 1};
  every_codec(&k);
  keys_from_env(&k, "T_PAGES_KEY",
                "202122232425262728292a2b2c2d2e2f"
                "303132333435363738393a3b3c3d3e3f");
  k.page_sums = 1;
  round_trip(&k, UFK_CODEC_LZ4, 1);
  round_trip(&k, UFK_CODEC_RAW, 0);
  /* The id of the same bytes differs with and without page sums. */
  uint8_t raw[CS], a[UFK_STORE_ID], b[UFK_STORE_ID];
  fill(raw, CS, 5, 1);
  struct ufk_store_keys whole = {0}, pages = {.page_sums = 1};
  ufk_store_chunk_id(&whole, raw, CS, a);
  ufk_store_chunk_id(&pages, raw, CS, b);
  ck_assert_mem_ne(a, b, UFK_STORE_ID);
  /* Sums made with the id are the ones encoding makes itself. */
  uint8_t sums[CS / 4096 * UFK_STORE_ID], c[UFK_STORE_ID];
  ufk_store_chunk_id_sums(&pages, raw, CS, sums, c);
  ck_assert_mem_eq(b, c, UFK_STORE_ID);
  uint8_t *x = malloc(ufk_store_encode_bound(CS)),
          *y = malloc(ufk_store_encode_bound(CS));
  struct ufk_store_entry ex, ey;
  ck_assert_int_eq(ufk_store_chunk_encode(&pages, UFK_CODEC_LZ4, 2, b, NULL,
                                          raw, CS, x, &ex, &err),
                   0);
  ck_assert_int_eq(ufk_store_chunk_encode(&pages, UFK_CODEC_LZ4, 2, b, sums,
                                          raw, CS, y, &ey, &err),
                   0);
  ck_assert_uint_eq(ex.stored_len, ey.stored_len);
  ck_assert_mem_eq(x, y, ex.stored_len);
  free(x);
  free(y);
  ufk_store_keys_wipe(&k);
}
END_TEST

/* A raw chunk (page sums, then its bytes) with page 2 damaged: a read of
 * page 0 is checked and served, page 2 and the whole chunk are refused,
 * naming the page; damaged sums are refused whatever is read. */
START_TEST(page_checks) {
  struct ufk_store_keys k = {.page_sums = 1};
  uint8_t raw[CS], out[CS], *stored = malloc(ufk_store_encode_bound(CS));
  struct ufk_store_entry e;
  encode(&k, UFK_CODEC_RAW, 0, 9, 0, raw, stored, &e);
  uint32_t sums = CS / 4096 * UFK_STORE_ID;
  ck_assert_uint_eq(e.stored_len, sums + CS);
  stored[sums + 2 * 4096 + 100] ^= 1;
  const uint8_t *got = NULL;
  ck_assert_int_eq(
      ufk_store_chunk_decode_part(&k, &e, stored, out, 0, 4096, &got, &err), 0);
  ck_assert_ptr_eq(got, stored);
  ck_assert_mem_eq(out, raw, 4096);
  ck_assert_int_eq(ufk_store_pages_check(got, out, 4096, 4096, &err), 0);
  ck_assert_int_eq(ufk_store_pages_check(got, out, 8000, 200, &err), -1);
  ck_assert_str_eq(err.msg, "page 2 (bytes 8192+4096 of the chunk) does not "
                            "hash to its page sum");
  ck_assert_int_eq(
      ufk_store_chunk_decode_part(&k, &e, stored, out, 8192, 4096, &got, &err),
      -1);
  ck_assert_int_eq(ufk_store_chunk_decode(&k, &e, stored, out, &err), -1);
  ck_assert_int_eq(
      ufk_store_chunk_decode_part(&k, &e, stored, out, 12288, 8192, &got, &err),
      -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "outside the chunk of 16384"));
  stored[sums + 2 * 4096 + 100] ^= 1;
  stored[33] ^= 1;
  ck_assert_int_eq(
      ufk_store_chunk_decode_part(&k, &e, stored, out, 0, 4096, &got, &err),
      -1);
  ck_assert_ptr_eq(strstr(err.msg, "the page sums do not hash to the chunk id"),
                   err.msg);
  free(stored);
}
END_TEST

/* Page blocks: every round trip as above, each page compressed alone. */
START_TEST(chunks_page_blocks) {
  struct ufk_store_keys k = {.page_sums = 1, .page_blocks = 1};
  every_codec(&k);
  keys_from_env(&k, "T_BLOCKS_KEY",
                "404142434445464748494a4b4c4d4e4f"
                "505152535455565758595a5b5c5d5e5f");
  k.page_sums = k.page_blocks = 1;
  round_trip(&k, UFK_CODEC_LZ4, 1);
  round_trip(&k, UFK_CODEC_ZSTD, 1);
  round_trip(&k, UFK_CODEC_RAW, 0);
  ufk_store_keys_wipe(&k);
}
END_TEST

/* A chunk of page blocks, page 2's block damaged: pages 0, 1 and 3 are
 * decoded alone (a part of a page too), straight where asked, and right;
 * page 2 is refused naming it, and so is the whole chunk; a block table
 * that does not add up to the bytes is refused before any page. */
START_TEST(page_block_checks) {
  struct ufk_store_keys k = {.page_sums = 1, .page_blocks = 1};
  uint8_t raw[CS], out[CS], *stored = malloc(ufk_store_encode_bound(CS));
  struct ufk_store_entry e;
  encode(&k, UFK_CODEC_LZ4, 2, 11, 1, raw, stored, &e);
  ck_assert_uint_eq(e.codec, UFK_CODEC_LZ4);
  uint32_t sums = CS / 4096 * UFK_STORE_ID, pages = CS / 4096;
  const uint8_t *table = stored + sums;
  uint32_t at = sums + 2 * pages;
  for (uint32_t j = 0; j < 2; j++)
    at += ufk_le16(table + 2 * j);
  stored[at + ufk_le16(table + 4) / 2] ^= 0x40; /* page 2's block */
  const uint8_t *got, *body;
  size_t n;
  ck_assert_int_eq(ufk_store_chunk_open(&k, &e, stored, &got, &body, &n, &err),
                   0);
  ck_assert_ptr_eq(got, stored);
  ck_assert_ptr_eq(body, stored + sums);
  ck_assert_uint_eq(n, e.stored_len - sums);
  memset(out, 0, sizeof out);
  ck_assert_int_eq(
      ufk_store_blocks_read(&e, got, body, n, 4096, 4096, out, 1, &err), 0);
  ck_assert_mem_eq(out, raw + 4096, 4096);
  ck_assert_int_eq(
      ufk_store_blocks_read(&e, got, body, n, 12288 + 100, 50, out, 1, &err),
      0);
  ck_assert_mem_eq(out, raw + 12288 + 100, 50);
  ck_assert_int_eq(
      ufk_store_blocks_read(&e, got, body, n, 8192, 4096, out, 1, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "page 2"));
  ck_assert_int_eq(ufk_store_chunk_decode(&k, &e, stored, out, &err), -1);
  ck_assert_int_eq(
      ufk_store_chunk_decode_part(&k, &e, stored, out, 0, 8192, &got, &err), 0);
  ck_assert_mem_eq(out, raw, 8192);
  /* Page 3's block one byte longer than the bytes hold. */
  ufk_put16(stored + sums + 6, (uint16_t)(ufk_le16(stored + sums + 6) + 1));
  ck_assert_int_eq(ufk_store_chunk_open(&k, &e, stored, &got, &body, &n, &err),
                   -1);
  ck_assert_ptr_eq(strstr(err.msg, "the block lengths do not add up"), err.msg);
  free(stored);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store-chunk");
  TCase *tc = tcase_create("chunk");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, chunks_plain);
  tcase_add_test(tc, chunks_encrypted);
  tcase_add_test(tc, ids_keyed_once);
  tcase_add_test(tc, chunks_page_sums);
  tcase_add_test(tc, page_checks);
  tcase_add_test(tc, chunks_page_blocks);
  tcase_add_test(tc, page_block_checks);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

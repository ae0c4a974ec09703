/* The pack header parser (common/store/pack.c) and the chunk decoder
 * (common/store/chunk.c) on arbitrary bytes.
 *
 * A parsed header serialises back to the input's first 64 bytes and
 * matches an index of its own values only at its own size.  The bytes after
 * the header are then decoded as one stored chunk, with the codec, length,
 * key and kind of store (page sums, page blocks) drawn from the input: the
 * decoder must stay inside its buffers and accept only bytes whose id
 * matches (checked here again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "fuzzcheck.h"
#include "object.h"
#include "pack.h"

static void check_head(const uint8_t *data, size_t size) {
  struct ufk_store_pack_head p;
  struct ufk_store_err err = {{0}};
  if (ufk_store_pack_parse(data, size, "fuzz", &p, &err) < 0) {
    CHECK(err.msg[0], "refused without a message");
    return;
  }
  uint8_t again[UFK_STORE_PACK_HEAD];
  ufk_store_pack_put(&p, again);
  CHECK(!memcmp(again, data, sizeof again), "does not serialise back");
  struct ufk_store_index x = {
      .flags = p.flags, .pack_bytes = p.pack_bytes, .nentries = p.nchunks};
  memcpy(x.pack, p.pack, UFK_STORE_ID);
  CHECK(ufk_store_pack_match(&p, &x, p.pack_bytes, "fuzz", &err) == 0,
        "does not match its own index: %s", err.msg);
  CHECK(ufk_store_pack_match(&p, &x, p.pack_bytes - 1, "fuzz", &err) < 0,
        "a truncated pack matched");
}

/* One page read from a chunk with page sums (on a copy: decoding may
 * decrypt in place): accepted only if the sums give the id and the page
 * gives its sum. */
static void check_page(const struct ufk_store_keys *k,
                       const struct ufk_store_entry *e, const uint8_t *stored,
                       uint8_t *out) {
  uint8_t *copy = malloc(e->stored_len + 1), id[UFK_STORE_ID],
          sum[UFK_STORE_ID];
  memcpy(copy, stored, e->stored_len);
  uint64_t page = (e->id[0] >> 2) % (e->raw_len / UFK_STORE_PAGE);
  const uint8_t *sums = NULL;
  struct ufk_store_err err = {{0}};
  if (ufk_store_chunk_decode_part(k, e, copy, out, page * UFK_STORE_PAGE,
                                  UFK_STORE_PAGE, &sums, &err) == 0) {
    ufk_store_id_of_sums(k, sums, e->raw_len / UFK_STORE_PAGE * UFK_STORE_ID,
                         id);
    CHECK(!memcmp(id, e->id, UFK_STORE_ID), "accepted sums not of its id");
    ufk_store_sha256(out + page * UFK_STORE_PAGE, UFK_STORE_PAGE, sum);
    CHECK(!memcmp(sum, sums + page * UFK_STORE_ID, UFK_STORE_ID),
          "accepted a page not of its sum");
  } else {
    CHECK(err.msg[0], "refused a page without a message");
  }
  free(copy);
}

static void check_chunk(const uint8_t *data, size_t size) {
  if (size < 2) return;
  struct ufk_store_keys k = {.page_sums = !!(data[0] & 8)};
  k.page_blocks = k.page_sums && (data[0] & 0x40);
  if (data[0] & 4) {
    k.encrypted = 1;
    memset(k.enc_key, data[1], sizeof k.enc_key);
    memset(k.id_key, data[1] ^ 0x5a, sizeof k.id_key);
  }
  struct ufk_store_entry e = {.codec = data[0] % 3,
                              .raw_len = 4096u << (data[0] >> 4 & 3),
                              .stored_len = (uint32_t)(size - 2)};
  memset(e.id, data[1], sizeof e.id);
  uint8_t *stored = malloc(size - 2 + 1), *out = malloc(e.raw_len);
  memcpy(stored, data + 2, size - 2);
  struct ufk_store_err err = {{0}};
  if (k.page_sums) check_page(&k, &e, stored, out);
  if (ufk_store_chunk_decode(&k, &e, stored, out, &err) == 0) {
    uint8_t id[UFK_STORE_ID];
    ufk_store_chunk_id(&k, out, e.raw_len, id);
    CHECK(!memcmp(id, e.id, UFK_STORE_ID), "accepted a chunk not its id");
  } else {
    CHECK(err.msg[0], "refused without a message");
  }
  free(stored);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_head(data, size);
  if (size > UFK_STORE_PACK_HEAD)
    check_chunk(data + UFK_STORE_PACK_HEAD, size - UFK_STORE_PACK_HEAD);
  return 0;
}

#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "keys.h"
#include "object.h"

/* The MAC (version 2) and the checksum. */
static size_t trailer(uint32_t version) {
  return version >= 2 ? 2 * UFK_STORE_ID : UFK_STORE_ID;
}

static int check_head(const uint8_t *buf, size_t len, const char *name,
                      struct ufk_store_index *x, struct ufk_store_err *err) {
  if (ufk_store_meta_head_parse(buf, len, UFK_STORE_MAGIC_INDEX, name,
                                &x->version, &x->flags, err) < 0)
    return -1;
  if (len < UFK_STORE_INDEX_HEAD + trailer(x->version))
    return ufk_store_fail(err, "%s: %zu bytes is too short for an index", name,
                          len);
  memcpy(x->pack, buf + 16, UFK_STORE_ID);
  x->nentries = ufk_le32(buf + 48);
  x->chunk_size = ufk_le32(buf + 52);
  x->pack_bytes = ufk_le64(buf + 56);
  if (!ufk_store_chunk_size_ok(x->chunk_size))
    return ufk_store_fail(err,
                          "%s: byte 52 (chunk size): %u is not a power of two "
                          "in 4096..4194304",
                          name, x->chunk_size);
  if (x->pack_bytes < UFK_STORE_PACK_HEAD)
    return ufk_store_fail(err,
                          "%s: byte 56 (pack size): %llu is less than a pack "
                          "header",
                          name, (unsigned long long)x->pack_bytes);
  uint64_t room = len - UFK_STORE_INDEX_HEAD - trailer(x->version);
  if (room % UFK_STORE_ENTRY_SIZE || room / UFK_STORE_ENTRY_SIZE != x->nentries)
    return ufk_store_fail(
        err, "%s: %zu bytes, but %u entries need %llu", name, len, x->nentries,
        (unsigned long long)(UFK_STORE_INDEX_HEAD + trailer(x->version) +
                             (uint64_t)x->nentries * UFK_STORE_ENTRY_SIZE));
  return ufk_store_sum_check(buf, len, name, err);
}

static int check_stored_len(const struct ufk_store_index *x,
                            const struct ufk_store_entry *e, size_t at,
                            const char *name, struct ufk_store_err *err) {
  /* Sealed bytes and page sums come on top of the codec's (at most 4 MiB
   * and 32 KiB: no overflow in 32 bits). */
  uint32_t extra = (x->flags & UFK_STORE_F_ENCRYPTED ? UFK_STORE_SEAL : 0) +
                   ufk_store_sums_len(x->flags, e->raw_len);
  if (e->codec == UFK_CODEC_RAW && e->stored_len != e->raw_len + extra)
    return ufk_store_fail(err,
                          "%s: byte %zu (entry stored length): %u for a raw "
                          "chunk of %u bytes",
                          name, at + 40, e->stored_len, e->raw_len);
  if (e->codec != UFK_CODEC_RAW &&
      (e->stored_len <= extra || e->stored_len >= e->raw_len + extra))
    return ufk_store_fail(err,
                          "%s: byte %zu (entry stored length): %u for a "
                          "compressed chunk of %u bytes",
                          name, at + 40, e->stored_len, e->raw_len);
  return 0;
}

int ufk_store_entry_check(const struct ufk_store_index *x,
                          const struct ufk_store_entry *e, size_t at,
                          const char *name, struct ufk_store_err *err) {
  if (e->codec > UFK_CODEC_LZ4)
    return ufk_store_fail(err, "%s: byte %zu (entry codec): unknown codec %u",
                          name, at + 48, e->codec);
  if (e->raw_len == 0 || e->raw_len > x->chunk_size || e->raw_len % 4096)
    return ufk_store_fail(err,
                          "%s: byte %zu (entry length): %u is not a multiple "
                          "of 4096 in 4096..%u",
                          name, at + 44, e->raw_len, x->chunk_size);
  if (check_stored_len(x, e, at, name, err) < 0) return -1;
  if (e->offset < UFK_STORE_PACK_HEAD || e->offset > x->pack_bytes ||
      e->stored_len > x->pack_bytes - e->offset)
    return ufk_store_fail(err,
                          "%s: byte %zu (entry offset): %llu+%u is outside "
                          "the pack's data (%u..%llu)",
                          name, at + 32, (unsigned long long)e->offset,
                          e->stored_len, UFK_STORE_PACK_HEAD,
                          (unsigned long long)x->pack_bytes);
  return 0;
}

static void get_entry(const uint8_t *p, struct ufk_store_entry *e) {
  memcpy(e->id, p, UFK_STORE_ID);
  e->offset = ufk_le64(p + 32);
  e->stored_len = ufk_le32(p + 40);
  e->raw_len = ufk_le32(p + 44);
  e->codec = p[48];
}

static int parse_entry(struct ufk_store_index *x, uint32_t i,
                       const uint8_t *buf, size_t at, const char *name,
                       struct ufk_store_err *err) {
  struct ufk_store_entry *e = &x->entries[i];
  get_entry(buf + at, e);
  if (!ufk_store_is_zero(buf + at + 49, 7))
    return ufk_store_fail(err, "%s: byte %zu (entry padding): not zero", name,
                          at + 49);
  if (ufk_store_is_zero(e->id, UFK_STORE_ID))
    return ufk_store_fail(err, "%s: byte %zu (entry id): zero", name, at);
  if (i && memcmp(x->entries[i - 1].id, e->id, UFK_STORE_ID) >= 0)
    return ufk_store_fail(err,
                          "%s: byte %zu (entry %u id): not above the id "
                          "before it (entries are sorted and unique)",
                          name, at, i);
  return ufk_store_entry_check(x, e, at, name, err);
}

int ufk_store_index_parse(const uint8_t *buf, size_t len, const char *name,
                          const struct ufk_store_keys *keys,
                          struct ufk_store_index *x,
                          struct ufk_store_err *err) {
  memset(x, 0, sizeof *x);
  struct ufk_store_index h = {0};
  if (check_head(buf, len, name, &h, err) < 0 ||
      ufk_store_mac_check(keys, buf, len, h.version, h.flags, name, err) < 0)
    return -1;
  h.entries = malloc(h.nentries ? h.nentries * sizeof *h.entries : 1);
  if (!h.entries) return ufk_store_fail(err, "%s: out of memory", name);
  size_t at = UFK_STORE_INDEX_HEAD;
  for (uint32_t i = 0; i < h.nentries; i++, at += UFK_STORE_ENTRY_SIZE)
    if (parse_entry(&h, i, buf, at, name, err) < 0) {
      ufk_store_index_free(&h);
      return -1;
    }
  *x = h;
  return 0;
}

size_t ufk_store_index_size(const struct ufk_store_index *x) {
  return UFK_STORE_INDEX_HEAD + x->nentries * (size_t)UFK_STORE_ENTRY_SIZE +
         trailer(UFK_STORE_META_VERSION);
}

static int by_id(const void *a, const void *b) {
  return memcmp(a, b, UFK_STORE_ID);
}

void ufk_store_index_put(struct ufk_store_index *x,
                         const struct ufk_store_keys *keys, uint8_t *out) {
  qsort(x->entries, x->nentries, sizeof *x->entries, by_id);
  memset(out, 0, ufk_store_index_size(x));
  ufk_store_meta_head_put(out, UFK_STORE_MAGIC_INDEX, x->flags);
  memcpy(out + 16, x->pack, UFK_STORE_ID);
  ufk_put32(out + 48, x->nentries);
  ufk_put32(out + 52, x->chunk_size);
  ufk_put64(out + 56, x->pack_bytes);
  size_t at = UFK_STORE_INDEX_HEAD;
  for (uint32_t i = 0; i < x->nentries; i++, at += UFK_STORE_ENTRY_SIZE) {
    const struct ufk_store_entry *e = &x->entries[i];
    memcpy(out + at, e->id, UFK_STORE_ID);
    ufk_put64(out + at + 32, e->offset);
    ufk_put32(out + at + 40, e->stored_len);
    ufk_put32(out + at + 44, e->raw_len);
    out[at + 48] = e->codec;
  }
  ufk_store_mac_put(keys, out, at);
  ufk_store_sum_put(out, at + UFK_STORE_ID);
}

const struct ufk_store_entry *
ufk_store_index_find(const struct ufk_store_index *x,
                     const uint8_t id[UFK_STORE_ID]) {
  return bsearch(id, x->entries, x->nentries, sizeof *x->entries, by_id);
}

void ufk_store_index_free(struct ufk_store_index *x) {
  free(x->entries);
  memset(x, 0, sizeof *x);
}

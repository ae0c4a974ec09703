#include <string.h>

#include "info.h"
#include "object.h"

int ufk_store_info_parse(const uint8_t *buf, size_t len, const char *name,
                         struct ufk_store_info *out,
                         struct ufk_store_err *err) {
  memset(out, 0, sizeof *out);
  if (ufk_store_head_parse(buf, len, UFK_STORE_MAGIC_STORE, name, &out->flags,
                           err) < 0)
    return -1;
  if (len != UFK_STORE_INFO_SIZE)
    return ufk_store_fail(err, "%s: %zu bytes, a store object has %u", name,
                          len, UFK_STORE_INFO_SIZE);
  if (ufk_store_sum_check(buf, len, name, err) < 0) return -1;
  out->chunk_size = ufk_le32(buf + 16);
  if (!ufk_store_chunk_size_ok(out->chunk_size))
    return ufk_store_fail(err,
                          "%s: byte 16 (chunk size): %u is not a power of two "
                          "in 4096..4194304",
                          name, out->chunk_size);
  if ((out->flags & UFK_STORE_F_PAGE_BLOCKS) &&
      !(out->flags & UFK_STORE_F_PAGE_SUMS))
    return ufk_store_fail(err,
                          "%s: byte 12 (flags): page blocks (bit 2) without "
                          "page sums (bit 1)",
                          name);
  if (ufk_le32(buf + 20))
    return ufk_store_fail(err, "%s: byte 20 (reserved): not zero", name);
  memcpy(out->key_check, buf + 24, UFK_STORE_ID);
  int enc = !!(out->flags & UFK_STORE_F_ENCRYPTED);
  if (enc == ufk_store_is_zero(out->key_check, UFK_STORE_ID))
    return ufk_store_fail(err,
                          "%s: byte 24 (key check): %s for a store %s "
                          "encryption",
                          name, enc ? "zero" : "set", enc ? "with" : "without");
  return 0;
}

void ufk_store_info_put(const struct ufk_store_info *in, uint8_t *out) {
  memset(out, 0, UFK_STORE_INFO_SIZE);
  ufk_store_head_put(out, UFK_STORE_MAGIC_STORE, in->flags);
  ufk_put32(out + 16, in->chunk_size);
  memcpy(out + 24, in->key_check, UFK_STORE_ID);
  ufk_store_sum_put(out, UFK_STORE_INFO_SIZE - UFK_STORE_ID);
}

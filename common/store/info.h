/* The object "store": chunk size, flags and the key check of a store. */
#ifndef UFFDKIT_STORE_INFO_H
#define UFFDKIT_STORE_INFO_H

#include "format.h"

int ufk_store_info_parse(const uint8_t *buf, size_t len, const char *name,
                         struct ufk_store_info *out, struct ufk_store_err *err);
/* Writes UFK_STORE_INFO_SIZE bytes. */
void ufk_store_info_put(const struct ufk_store_info *in, uint8_t *out);

#endif

/* What the manifests of a store reference: for inspect, verify and gc. */
#ifndef UFFDKIT_SNAP_CHUNKSCAN_H
#define UFFDKIT_SNAP_CHUNKSCAN_H

#include "chunkstore.h"

struct cs_scan {
  size_t nsnaps;
  char **names;
  uint64_t *sizes;
  uint8_t **used;     /* per pack, per entry: referenced */
  uint8_t *pack_used; /* per pack: listed by a manifest */
  size_t npacks;
  uint64_t logical, zero_bytes, refs, zero_chunks;
  uint64_t uniq_chunks, uniq_raw, uniq_stored;
  uint64_t all_chunks, all_raw, all_stored, pack_bytes;
};

/* Loads and resolves every manifest (or only `only`); any that fails to
 * load fails the scan. */
int cs_scan(struct chunkstore *s, const char *only, struct cs_scan *sc);
void cs_scan_print(const struct chunkstore *s, const struct cs_scan *sc);
void cs_scan_json(const struct chunkstore *s, const struct cs_scan *sc);
void cs_scan_free(struct cs_scan *sc);
int cs_gc(int argc, char **argv);

#endif

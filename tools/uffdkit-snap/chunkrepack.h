/* gc --repack: packs mostly unreferenced rewritten with their live chunks. */
#ifndef UFFDKIT_SNAP_CHUNKREPACK_H
#define UFFDKIT_SNAP_CHUNKREPACK_H

#include "chunkscan.h"

struct cs_repack {
  uint64_t packs, manifests, bytes_before, bytes_after;
};

/* Repacks every pack a manifest lists whose live share of stored bytes is
 * below `below` (0..1).  sc is the scan of every manifest.  Returns 0 or -1
 * after a message. */
int cs_repack(struct chunkstore *s, const struct cs_scan *sc, double below,
              struct cs_repack *r);
/* Deletes pack hex: its index, then the pack. */
int cs_drop_pack(struct chunkstore *s, const char *hex);

#endif

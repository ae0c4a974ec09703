/* Writing new packs for an import: chunks are appended to a pack in tmp/;
 * full packs and their indexes wait there until the import publishes them,
 * before its manifest. */
#ifndef UFFDKIT_SNAP_CHUNKWRITE_H
#define UFFDKIT_SNAP_CHUNKWRITE_H

#include "chunkencode.h"
#include "chunkstore.h"

struct cw_done {
  char hex[2 * UFK_STORE_ID + 1];
  char *pack_tmp, *idx_tmp;
};

struct chunkwriter {
  struct chunkstore *s;
  int codec, level;
  uint64_t pack_limit;
  /* the pack being written */
  int fd;
  char *tmp;
  uint32_t slot; /* its number in s->packs */
  uint64_t off;
  uint8_t *enc;
  struct cencoder *pool; /* or NULL: chunks encoded on the caller's thread */
  /* packs written, not yet published */
  struct cw_done *done;
  size_t ndone;
  uint64_t new_chunks, new_raw, new_stored;
};

int cw_init(struct chunkwriter *w, struct chunkstore *s, int codec, int level,
            uint64_t pack_limit);
/* Encodes chunks on `threads` threads from now (1: on the caller's). */
int cw_threads(struct chunkwriter *w, int threads);
/* Stores a chunk the store does not hold (sums: its page sums, or NULL;
 * see ufk_store_chunk_encode); *pack gets its pack number, at
 * once or, with encoder threads, by the time the next cw_add, cw_cut or
 * cw_publish returns.  Returns 0; 1 when the chunk equals one still being
 * encoded (then *pack is set, and nothing more is stored); -1. */
int cw_add(struct chunkwriter *w, const uint8_t id[UFK_STORE_ID],
           const uint8_t *sums, const void *raw, uint32_t len, uint32_t *pack);
/* Appends a chunk as it is stored elsewhere in the store (entry e and its
 * stored bytes), unchanged: a sealed chunk's additional data names no
 * pack, so its bytes are valid in any pack of the store. */
int cw_add_stored(struct chunkwriter *w, const struct ufk_store_entry *e,
                  const void *stored);
/* Writes every chunk still with the encoders: each cw_add's *pack is set
 * from here.  Returns 0 or -1. */
int cw_flush(struct chunkwriter *w);
/* Ends the pack being written: the next chunk starts a new one. */
int cw_cut(struct chunkwriter *w);
/* Finishes the last pack and renames every pack, then its index, into
 * packs/.  Returns 0 or -1. */
int cw_publish(struct chunkwriter *w);
/* Removes whatever is still in tmp/. */
void cw_abort(struct chunkwriter *w);
void cw_free(struct chunkwriter *w);

#endif

/* store: serves one snapshot of a chunk store (docs/store-format.md). */
#ifndef UFFDKIT_PLUGIN_STORE_INTERNAL_H
#define UFFDKIT_PLUGIN_STORE_INTERNAL_H

#include <stdint.h>
#include <uffdkit/plugin.h>

#include "ccache.h"
#include "format.h"
#include "keys.h"

extern const struct ufk_host *host;

/* One object of the store: a local file, or a nested source. */
struct object {
  char *name;  /* as in the store, e.g. "packs/ID.pack" */
  char *shown; /* path or "objects:NAME", for messages */
  int fd;
  const uint8_t *map; /* a local object's bytes, when mapped */
  struct ufk_next *src;
  uint64_t size;
};

struct pack {
  struct ufk_store_index idx;
  struct object obj;
};

struct store {
  const struct ufk_config *cfg;
  const char *path; /* local store folder, or NULL */
  const char *snapshot;
  const char *key_file, *key_env;
  struct ufk_store_keys keys;
  struct ufk_store_info info;
  struct ufk_store_manifest m;
  uint8_t manifest_sum[UFK_STORE_ID];
  struct pack *packs; /* m.npacks */
  /* per chunk: its entry, or NULL for a zero chunk; and its pack */
  const struct ufk_store_entry **entry;
  uint32_t *pack_of;
  uint64_t cache_bytes; /* the setting chunk_cache */
  struct ccache cache;  /* checked chunks read or prefetched */
  uint64_t *c_fetched, *c_served, *c_zero, *c_chunks, *c_bad, *c_recent;
  uint64_t *c_pool_made, *c_pool_fills;
};

int obj_open(struct store *s, struct object *o, const char *name);
int obj_read(struct object *o, void *buf, uint64_t len, uint64_t off,
             uint32_t flags);
void obj_close(struct object *o);

/* Checks chunk i's stored bytes (changed in place when sealed) and
 * decodes them into out; counts it.  0, or -1 after host->error (EIO). */
int store_check_chunk(struct store *s, uint64_t i, uint8_t *stored,
                      uint8_t *out);
/* The same, checking only the pages covering [from, from + len) in a store
 * with page sums: then *sums is set to a copy of the chunk's page sums
 * (from malloc) for checking the others later, or NULL when the whole
 * chunk was checked. */
int store_check_part(struct store *s, uint64_t i, uint8_t *stored, uint8_t *out,
                     uint64_t from, uint64_t len, uint8_t **sums);
/* In a store with page sums: checks chunk i's GCM tag and page sums
 * (ufk_store_chunk_open) and counts it.  0, or -1 after host->error. */
int store_open_chunk(struct store *s, uint64_t i, uint8_t *stored,
                     const uint8_t **sums, const uint8_t **body, size_t *n);
/* In a store with page blocks: bytes [from, from + len) of chunk i into
 * dst, decoded from its blocks (body, n bytes) and checked when check is
 * set (ufk_store_blocks_read).  0, or -1 after host->error (EIO). */
int store_read_pages(struct store *s, uint64_t i, const uint8_t *sums,
                     const uint8_t *body, size_t n, uint64_t from, uint64_t len,
                     void *dst, int check);
/* The cache's copy out of a held chunk (ccache_copy_fn). */
int store_copy_out(void *arg, uint64_t i, const uint8_t *data, uint64_t len,
                   const uint8_t *sums, int check, uint64_t shift, void *dst,
                   uint64_t n);

/* From a store with page blocks: n bytes of chunk i from `shift` into dst
 * after a cache miss (got: what ccache_get said; blocks.c). */
int store_serve_blocks(struct store *s, uint64_t i, uint64_t shift,
                       uint8_t *dst, uint64_t n, uint32_t flags, int got);
/* A copy of an opened chunk of a store with page blocks for the cache: its
 * bytes past the sums in a buffer of the cache (len: the buffer's size),
 * and its sums unless every page was checked (whole; else `checked`: bit
 * j, page j was).  0, or -1 (k->data NULL) when it cannot be kept. */
int store_keep_blocks(struct store *s, uint64_t i, const uint8_t *sums,
                      const uint8_t *body, size_t n, uint64_t checked,
                      int whole, struct cchunk *k);

/* Loads the store object, the manifest, the indexes and opens the packs. */
int store_load(struct store *s);
void store_unload(struct store *s);

#endif

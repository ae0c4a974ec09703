/* uffdkit-snap store: chunk stores (docs/store-format.md) on a local disk. */
#ifndef UFFDKIT_SNAP_CHUNKSTORE_H
#define UFFDKIT_SNAP_CHUNKSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "keys.h"

#define CS_DEFAULT_CHUNK (16u << 10) /* chosen by bench/store/run */
#define CS_DEFAULT_PACK (256ull << 20)

/* Where a chunk id is stored: pack (index into cs.packs) and entry. */
struct cs_loc {
  uint8_t id[UFK_STORE_ID];
  uint32_t pack;
  uint32_t entry; /* UINT32_MAX: free slot */
};

struct cs_pack {
  char hex[2 * UFK_STORE_ID + 1];
  struct ufk_store_index idx;
  int fd; /* opened when first read */
  char *path;
};

struct chunkstore {
  char *dir;
  struct ufk_store_info info;
  struct ufk_store_keys keys;
  int lock_fd;
  struct cs_pack *packs;
  size_t npacks, cap_packs;
  struct cs_loc *tab; /* open addressing on the id's first bytes */
  size_t tab_size, tab_used;
};

/* Store-wide options of the command line. */
struct cs_opts {
  const char *key_file, *key_env;
  uint32_t chunk_size; /* 0: the store's, or the default when creating */
  int check_by;        /* 0: the store's, or by page when creating */
  int decode_by;       /* 0: the store's, or as check_by when creating */
  int keyless;         /* no key given: read only what is not encrypted */
};

/* check_by and decode_by: by page (page sums; page blocks) or by chunk. */
enum { CS_BY_PAGE = 1, CS_BY_CHUNK };

enum cs_lock { CS_LOCK_NONE, CS_LOCK_SHARED, CS_LOCK_EXCLUSIVE };

/* Opens dir (creating it when `create`), checks the key, takes the lock and
 * loads every index.  Returns 0 or -1 after a message. */
int cs_open(struct chunkstore *s, const char *dir, const struct cs_opts *o,
            int create, enum cs_lock lock, int wait);
void cs_close(struct chunkstore *s);
/* Adds pack `hex` (its index already parsed, owned from now on). */
int cs_add_pack(struct chunkstore *s, const char *hex,
                struct ufk_store_index *idx);
const struct cs_loc *cs_find(const struct chunkstore *s,
                             const uint8_t id[UFK_STORE_ID]);
/* Adds id at (pack, entry) unless present. */
int cs_remember(struct chunkstore *s, const uint8_t id[UFK_STORE_ID],
                uint32_t pack, uint32_t entry);
/* Reads an entry's stored bytes as they are (its stored length). */
int cs_read_stored(struct chunkstore *s, uint32_t pack, uint32_t entry,
                   void *out);
/* Reads and checks one chunk into out (its raw length). */
int cs_read_chunk(struct chunkstore *s, const struct cs_loc *l, void *out);
/* The keys that check manifests' and indexes' MACs: NULL (not checked)
 * when the store is encrypted and no key was given (gc, inspect). */
const struct ufk_store_keys *cs_meta_keys(const struct chunkstore *s);
/* Reads and parses a whole metadata object at path. */
int cs_load_file(const char *path, uint8_t **buf, size_t *len);
int cs_load_manifest(struct chunkstore *s, const char *name,
                     struct ufk_store_manifest *m);
/* Each chunk i of m resolved to its location (entry UINT32_MAX: a zero
 * chunk).  *out is malloc'd. */
int cs_resolve(struct chunkstore *s, const struct ufk_store_manifest *m,
               const char *name, struct cs_loc **out);
int cs_name_ok(const char *name);
char *cs_path(const struct chunkstore *s, const char *a, const char *b);

/* Writes buf to tmp/, syncs it and renames it to dir/sub/name. */
int cs_publish(struct chunkstore *s, const char *sub, const char *name,
               const void *buf, size_t len);
int cs_sync_dir(const char *dir);

int cmd_store(int argc, char **argv);
int cs_import(int argc, char **argv);

#endif

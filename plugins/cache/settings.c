/* cache: its settings, checked with messages that name where each was
 * set, and its counters. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <uffdkit/plugin.h>

#include "cache.h"
#include "layer.h"

#define MIN_CHUNK 4096ull
#define MAX_CHUNK (1ull << 30)
#define MAX_SLOTS (1u << 30)
#define MAX_QUEUE 1024

#define fail(...) ufk_fail(host, __VA_ARGS__)

int cache_read_settings(const struct ufk_host *host,
                        const struct ufk_config *cfg, struct cache *c) {
  const char *file;
  if (host->get_size(cfg, "chunk", &c->chunk) ||
      host->get_size(cfg, "size", &c->capacity))
    return fail(EINVAL, "cache: chunk and size must be sizes");
  int64_t parts;
  if (host->get_int(cfg, "parts", &parts))
    return fail(EINVAL, "cache: parts must be an integer");
  if (parts < 1 || parts > MAX_PARTS)
    return fail(EINVAL, "parts (%s): %" PRId64 " is not in 1..%d",
                host->where(cfg, "parts"), parts, MAX_PARTS);
  c->parts = (unsigned)parts;
  if (c->chunk < MIN_CHUNK || c->chunk > MAX_CHUNK ||
      (c->chunk & (c->chunk - 1)))
    return fail(EINVAL,
                "chunk (%s): %" PRIu64 " is not a power of two in 4K..1G",
                host->where(cfg, "chunk"), c->chunk);
  if (c->capacity < c->chunk || c->capacity / c->chunk > MAX_SLOTS)
    return fail(EINVAL,
                "size (%s): %" PRIu64 " must hold 1 to 2^30 chunks of %" PRIu64,
                host->where(cfg, "size"), c->capacity, c->chunk);
  int r = host->get_string(cfg, "file", &file);
  if (r < 0) return -1;
  if (r == 0 && *file && !(c->file = strdup(file)))
    return fail(ENOMEM, "file: out of memory");
  if (host->get_size(cfg, "dir_size", &c->dir_size))
    return fail(EINVAL, "cache: dir_size must be a size");
  r = host->get_string(cfg, "dir", &file);
  if (r < 0) return -1;
  if (r == 0 && *file && !(c->dir = strdup(file)))
    return fail(ENOMEM, "dir: out of memory");
  int64_t q;
  if (host->get_int(cfg, "dir_queue", &q))
    return fail(EINVAL, "cache: dir_queue must be an integer");
  if (q < 1 || q > MAX_QUEUE)
    return fail(EINVAL, "dir_queue (%s): %" PRId64 " is not in 1..%d",
                host->where(cfg, "dir_queue"), q, MAX_QUEUE);
  c->dir_queue = (unsigned)q;
  if (c->dir && c->dir_size < c->chunk + DISK_HEADER)
    return fail(EINVAL, "dir_size (%s): %" PRIu64 " holds no chunk",
                host->where(cfg, "dir_size"), c->dir_size);
  c->shift = (unsigned)__builtin_ctzll(c->chunk);
  return 0;
}

/* Every counter exists with or without dir, so a dashboard's panel of
 * hits by tier reads zero, not nothing, for a cache in memory only. */
void cache_make_counters(const struct ufk_host *host,
                         const struct ufk_config *cfg, struct cache *c) {
  c->c_hits = host->counter(cfg, "hits", "chunk lookups served from memory");
  c->c_misses = host->counter(cfg, "misses", "chunk fetches started");
  c->c_disk_hits =
      host->counter(cfg, "disk_hits", "chunk fetches served from dir");
  c->c_remote = host->counter(cfg, "remote_fetches",
                              "chunk fetches served by the source below");
  c->c_bytes = host->counter(cfg, "bytes_fetched", "bytes read from below");
  c->c_evictions =
      host->counter(cfg, "evictions", "chunks reclaimed from memory");
  c->c_disk_writes = host->counter(cfg, "disk_writes", "chunks stored in dir");
  c->c_disk_evictions =
      host->counter(cfg, "disk_evictions", "entries removed from dir");
  c->c_disk_discarded = host->counter(
      cfg, "disk_discarded", "entries of dir that failed their checks");
  c->c_disk_skipped = host->counter(
      cfg, "disk_skipped", "chunks not stored in dir: its writer was behind");
}

const struct ufk_param cache_params[] = {
    {"chunk", UFK_T_SIZE, 0, "4M",
     "unit of fetching and caching, a power of two >= 4K"},
    {"size", UFK_T_SIZE, 0, "1G", "capacity"},
    {"file", UFK_T_STRING, 0, NULL,
     "keep chunks in this new local file (unlinked at once), not in memory"},
    {"parts", UFK_T_INT, 0, "1",
     "requests a chunk is fetched with, side by side, 1 to 16"},
    {"dir", UFK_T_STRING, 0, NULL,
     "also keep chunks in this directory, across daemon restarts"},
    {"dir_size", UFK_T_SIZE, 0, "10G", "bound of dir's entries, in bytes"},
    {"dir_queue", UFK_T_INT, 0, "8",
     "copies of chunks waiting to be written to dir, at most (1 to 1024); "
     "more wait by their place and are written from memory"},
    {0},
};

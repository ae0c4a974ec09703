#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkscan.h"
#include "manifest.h"
#include "snap.h"

static int list_snapshots(struct chunkstore *s, struct cs_scan *sc) {
  char *path = cs_path(s, "snapshots", NULL);
  DIR *d = path ? opendir(path) : NULL;
  if (!d) {
    if (path) snap_error("%s: cannot list: %s", path, strerror(errno));
    free(path);
    return -1;
  }
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char **n = realloc(sc->names, (sc->nsnaps + 1) * sizeof *n);
    if (!n || !(n[sc->nsnaps] = strdup(e->d_name))) rc = -1;
    if (n) sc->names = n;
    if (rc == 0) sc->nsnaps++;
  }
  closedir(d);
  free(path);
  return rc;
}

static void mark(struct chunkstore *s, struct cs_scan *sc,
                 const struct ufk_store_manifest *m, const struct cs_loc *l) {
  for (uint32_t i = 0; i < m->npacks; i++)
    for (size_t p = 0; p < s->npacks; p++)
      if (!memcmp(s->packs[p].idx.pack, m->packs[i], UFK_STORE_ID))
        sc->pack_used[p] = 1;
  for (uint64_t i = 0; i < m->nchunks; i++) {
    uint64_t left = m->image_size - i * m->chunk_size;
    uint64_t n = left < m->chunk_size ? left : m->chunk_size;
    sc->refs++;
    sc->logical += n;
    if (l[i].entry == UINT32_MAX) {
      sc->zero_chunks++;
      sc->zero_bytes += n;
      continue;
    }
    uint8_t *u = &sc->used[l[i].pack][l[i].entry];
    if (*u) continue;
    *u = 1;
    const struct ufk_store_entry *e =
        &s->packs[l[i].pack].idx.entries[l[i].entry];
    sc->uniq_chunks++;
    sc->uniq_raw += e->raw_len;
    sc->uniq_stored += e->stored_len;
  }
}

static int scan_one(struct chunkstore *s, struct cs_scan *sc, size_t k) {
  struct ufk_store_manifest m;
  struct cs_loc *l;
  if (cs_load_manifest(s, sc->names[k], &m) < 0) return -1;
  int rc = cs_resolve(s, &m, sc->names[k], &l);
  if (rc == 0) {
    sc->sizes[k] = m.image_size;
    mark(s, sc, &m, l);
    free(l);
  }
  ufk_store_manifest_free(&m);
  return rc;
}

int cs_scan(struct chunkstore *s, const char *only, struct cs_scan *sc) {
  memset(sc, 0, sizeof *sc);
  sc->npacks = s->npacks;
  sc->used = calloc(s->npacks + 1, sizeof *sc->used);
  sc->pack_used = calloc(s->npacks + 1, 1);
  if (!sc->used || !sc->pack_used) return -1;
  for (size_t p = 0; p < s->npacks; p++) {
    const struct ufk_store_index *x = &s->packs[p].idx;
    if (!(sc->used[p] = calloc(x->nentries + 1, 1))) return -1;
    sc->all_chunks += x->nentries;
    sc->pack_bytes += x->pack_bytes;
    for (uint32_t i = 0; i < x->nentries; i++) {
      sc->all_raw += x->entries[i].raw_len;
      sc->all_stored += x->entries[i].stored_len;
    }
  }
  if (only) {
    sc->names = malloc(sizeof *sc->names);
    if (!sc->names || !(sc->names[0] = strdup(only))) return -1;
    sc->nsnaps = 1;
  } else if (list_snapshots(s, sc) < 0) {
    return -1;
  }
  if (!(sc->sizes = calloc(sc->nsnaps + 1, sizeof *sc->sizes))) return -1;
  for (size_t k = 0; k < sc->nsnaps; k++)
    if (scan_one(s, sc, k) < 0) return -1;
  return 0;
}

static double ratio(uint64_t a, uint64_t b) {
  return b ? (double)a / (double)b : 0.0;
}

void cs_scan_print(const struct chunkstore *s, const struct cs_scan *sc) {
  printf("store %s: chunk size %u, %s, %s, %s\n", s->dir, s->info.chunk_size,
         s->info.flags & UFK_STORE_F_ENCRYPTED ? "encrypted" : "not encrypted",
         s->info.flags & UFK_STORE_F_PAGE_SUMS ? "checked by page"
                                               : "checked by chunk",
         s->info.flags & UFK_STORE_F_PAGE_BLOCKS ? "decoded by page"
                                                 : "decoded by chunk");
  printf("packs: %zu, %llu chunks, %llu bytes stored for %llu\n", s->npacks,
         (unsigned long long)sc->all_chunks, (unsigned long long)sc->all_stored,
         (unsigned long long)sc->all_raw);
  for (size_t k = 0; k < sc->nsnaps; k++)
    printf("snapshot %s: %llu bytes\n", sc->names[k],
           (unsigned long long)sc->sizes[k]);
  printf("logical: %llu bytes in %llu chunks, %llu zero (%llu bytes)\n",
         (unsigned long long)sc->logical, (unsigned long long)sc->refs,
         (unsigned long long)sc->zero_chunks,
         (unsigned long long)sc->zero_bytes);
  printf("referenced: %llu distinct chunks, %llu bytes, stored in %llu\n",
         (unsigned long long)sc->uniq_chunks, (unsigned long long)sc->uniq_raw,
         (unsigned long long)sc->uniq_stored);
  printf("dedup ratio %.3f, compression ratio %.3f, stored/logical %.4f\n",
         ratio(sc->logical - sc->zero_bytes, sc->uniq_raw),
         ratio(sc->uniq_stored, sc->uniq_raw),
         ratio(sc->uniq_stored, sc->logical));
  printf("unreferenced: %llu chunks, %llu bytes stored\n",
         (unsigned long long)(sc->all_chunks - sc->uniq_chunks),
         (unsigned long long)(sc->all_stored - sc->uniq_stored));
}

void cs_scan_json(const struct chunkstore *s, const struct cs_scan *sc) {
  cJSON *o = cJSON_CreateObject(), *snaps = cJSON_CreateArray();
  cJSON_AddNumberToObject(o, "chunk_size", s->info.chunk_size);
  cJSON_AddBoolToObject(o, "encrypted",
                        !!(s->info.flags & UFK_STORE_F_ENCRYPTED));
  cJSON_AddBoolToObject(o, "page_sums",
                        !!(s->info.flags & UFK_STORE_F_PAGE_SUMS));
  cJSON_AddBoolToObject(o, "page_blocks",
                        !!(s->info.flags & UFK_STORE_F_PAGE_BLOCKS));
  cJSON_AddNumberToObject(o, "packs", (double)s->npacks);
  cJSON_AddNumberToObject(o, "pack_bytes", (double)sc->pack_bytes);
  cJSON_AddNumberToObject(o, "chunks_stored", (double)sc->all_chunks);
  cJSON_AddNumberToObject(o, "stored_bytes", (double)sc->all_stored);
  cJSON_AddNumberToObject(o, "stored_raw_bytes", (double)sc->all_raw);
  for (size_t k = 0; k < sc->nsnaps; k++) {
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "name", sc->names[k]);
    cJSON_AddNumberToObject(n, "size", (double)sc->sizes[k]);
    cJSON_AddItemToArray(snaps, n);
  }
  cJSON_AddItemToObject(o, "snapshots", snaps);
  cJSON_AddNumberToObject(o, "logical_bytes", (double)sc->logical);
  cJSON_AddNumberToObject(o, "chunks", (double)sc->refs);
  cJSON_AddNumberToObject(o, "zero_chunks", (double)sc->zero_chunks);
  cJSON_AddNumberToObject(o, "zero_bytes", (double)sc->zero_bytes);
  cJSON_AddNumberToObject(o, "distinct_chunks", (double)sc->uniq_chunks);
  cJSON_AddNumberToObject(o, "distinct_bytes", (double)sc->uniq_raw);
  cJSON_AddNumberToObject(o, "distinct_stored_bytes", (double)sc->uniq_stored);
  cJSON_AddNumberToObject(o, "dedup_ratio",
                          ratio(sc->logical - sc->zero_bytes, sc->uniq_raw));
  cJSON_AddNumberToObject(o, "compression_ratio",
                          ratio(sc->uniq_stored, sc->uniq_raw));
  cJSON_AddNumberToObject(o, "stored_per_logical",
                          ratio(sc->uniq_stored, sc->logical));
  cJSON_AddNumberToObject(o, "unreferenced_chunks",
                          (double)(sc->all_chunks - sc->uniq_chunks));
  char *t = cJSON_Print(o);
  if (t) puts(t);
  free(t);
  cJSON_Delete(o);
}

void cs_scan_free(struct cs_scan *sc) {
  for (size_t k = 0; k < sc->nsnaps; k++)
    free(sc->names[k]);
  for (size_t p = 0; sc->used && p < sc->npacks; p++)
    free(sc->used[p]);
  free(sc->names);
  free(sc->sizes);
  free(sc->used);
  free(sc->pack_used);
  memset(sc, 0, sizeof *sc);
}

/* inspect, flatten and verify: read a generation of the store. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap.h"

static int load_header(const char *store, const char *build,
                       struct ufk_snap_header *h, char **path) {
  uint8_t id[16];
  struct ufk_snap_err err;
  if (snap_parse_id(build, id) < 0 ||
      !(*path = snap_path(store, build, SNAP_HEADER)))
    return -1;
  if (ufk_snap_load(*path, h, &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  return 0;
}

static double share(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static uint64_t zero_bytes(const struct ufk_snap_header *h,
                           const struct ufk_snap_build *b, size_t nb) {
  uint64_t used = 0;
  for (size_t i = 0; i < nb; i++)
    used += b[i].bytes;
  return h->size - used;
}

static void sha_hex(const uint8_t *p, char out[65]) {
  static const uint8_t zero[32];
  if (!memcmp(p, zero, 32)) {
    strcpy(out, "unknown");
    return;
  }
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
}

/* V4/V5: how each build is stored, as the header says. */
static void print_entries(const struct ufk_snap_header *h) {
  if (ufk_snap_format(h) < 4) return;
  printf("%-19s0x%02x\n%-19s%zu\n", "flags:", h->flags,
         "build entries:", h->nentries);
  for (size_t i = 0; i < h->nentries; i++) {
    const struct ufk_snap_entry *e = &h->entries[i];
    char id[UFK_SNAP_UUID_STR], sha[65];
    ufk_snap_id_str(e->build_id, id);
    sha_hex(e->checksum, sha);
    uint64_t c = 0;
    for (size_t k = 0; k < e->nframes; k++)
      c += e->frames[k].size_c;
    printf("  %s codec %s, %zu frames (%llu bytes), size %llu, sha256 %s\n", id,
           ufk_snap_codec_name(e->codec), e->nframes, (unsigned long long)c,
           (unsigned long long)e->size, sha);
  }
}

static cJSON *json_entries(const struct ufk_snap_header *h) {
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; i < h->nentries; i++) {
    const struct ufk_snap_entry *e = &h->entries[i];
    char id[UFK_SNAP_UUID_STR], sha[65];
    cJSON *o = cJSON_CreateObject();
    ufk_snap_id_str(e->build_id, id);
    sha_hex(e->checksum, sha);
    cJSON_AddStringToObject(o, "build_id", id);
    cJSON_AddStringToObject(o, "codec", ufk_snap_codec_name(e->codec));
    cJSON_AddNumberToObject(o, "frames", (double)e->nframes);
    cJSON_AddNumberToObject(o, "size", (double)e->size);
    cJSON_AddStringToObject(o, "sha256", sha);
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

static void print_text(const struct ufk_snap_header *h,
                       const struct ufk_snap_build *b, size_t nb) {
  char id[UFK_SNAP_UUID_STR], base[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(h->build_id, id);
  ufk_snap_id_str(h->base_build_id, base);
  printf("%-19s%s\n%-19s%s\n", "build id:", id, "base build id:", base);
  printf("%-19s%llu\n%-19s%llu\n%-19s%llu\n",
         "version:", (unsigned long long)h->version,
         "block size:", (unsigned long long)h->block_size,
         "size:", (unsigned long long)h->size);
  printf("%-19s%llu\n%-19s%zu\n%-19s%zu\n",
         "generation:", (unsigned long long)h->generation,
         "mappings:", h->nmappings, "builds referenced:", nb);
  uint64_t z = zero_bytes(h, b, nb);
  printf("  %-36s %16llu bytes %6.2f%%\n", "zero", (unsigned long long)z,
         share(z, h->size));
  for (size_t i = 0; i < nb; i++) {
    ufk_snap_id_str(b[i].id, id);
    printf("  %-36s %16llu bytes %6.2f%%%s\n", id,
           (unsigned long long)b[i].bytes, share(b[i].bytes, h->size),
           memcmp(b[i].id, h->build_id, 16) ? "" : " (this build)");
  }
  print_entries(h);
}

static cJSON *json_share(const char *id, uint64_t bytes, uint64_t size) {
  cJSON *o = cJSON_CreateObject();
  if (id) cJSON_AddStringToObject(o, "build_id", id);
  cJSON_AddNumberToObject(o, "bytes", (double)bytes);
  cJSON_AddNumberToObject(o, "share", share(bytes, size) / 100.0);
  return o;
}

static int print_json(const struct ufk_snap_header *h,
                      const struct ufk_snap_build *b, size_t nb) {
  char id[UFK_SNAP_UUID_STR];
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "version", (double)h->version);
  cJSON_AddNumberToObject(o, "block_size", (double)h->block_size);
  cJSON_AddNumberToObject(o, "size", (double)h->size);
  cJSON_AddNumberToObject(o, "generation", (double)h->generation);
  ufk_snap_id_str(h->build_id, id);
  cJSON_AddStringToObject(o, "build_id", id);
  ufk_snap_id_str(h->base_build_id, id);
  cJSON_AddStringToObject(o, "base_build_id", id);
  cJSON_AddNumberToObject(o, "mappings", (double)h->nmappings);
  cJSON_AddItemToObject(o, "zero",
                        json_share(NULL, zero_bytes(h, b, nb), h->size));
  if (ufk_snap_format(h) >= 4)
    cJSON_AddItemToObject(o, "entries", json_entries(h));
  cJSON *arr = cJSON_AddArrayToObject(o, "builds");
  for (size_t i = 0; i < nb; i++) {
    ufk_snap_id_str(b[i].id, id);
    cJSON_AddItemToArray(arr, json_share(id, b[i].bytes, h->size));
  }
  char *s = cJSON_Print(o);
  cJSON_Delete(o);
  if (!s) {
    snap_error("out of memory printing JSON");
    return -1;
  }
  puts(s);
  free(s);
  return 0;
}

int cmd_inspect(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                       {0, 0, 0, 0}};
  int c, json = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1)
    if (c != 'j')
      return SNAP_EXIT_USAGE;
    else
      json = 1;
  if (argc - optind != 2) {
    snap_error("inspect: expected STORE BUILD (see --help)");
    return SNAP_EXIT_USAGE;
  }
  struct ufk_snap_header h = {0};
  struct ufk_snap_build *b = NULL;
  size_t nb = 0;
  char *path = NULL;
  int rc = -1;
  if (load_header(argv[optind], argv[optind + 1], &h, &path) < 0) goto out;
  if (ufk_snap_builds(&h, &b, &nb) < 0) {
    snap_error("%s: out of memory", path);
    goto out;
  }
  if (json)
    rc = print_json(&h, b, nb);
  else
    print_text(&h, b, nb), rc = 0;
out:
  free(b);
  free(path);
  ufk_snap_free(&h);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

static int copy_mapping(struct snap_image *im, size_t i, int out,
                        const char *name, uint8_t *buf, struct progress *prog) {
  const struct ufk_snap_mapping *m = &im->h.mappings[i];
  for (uint64_t done = 0; done < m->length; done += SNAP_CHUNK) {
    size_t n = m->length - done < SNAP_CHUNK ? m->length - done : SNAP_CHUNK;
    if (snap_check_interrupt() < 0 ||
        image_read(im, buf, n, m->offset + done) < 0)
      return -1;
    if (pwrite(out, buf, n, (off_t)(m->offset + done)) != (ssize_t)n) {
      snap_error("%s: cannot write %zu bytes at offset %llu: %s", name, n,
                 (unsigned long long)(m->offset + done),
                 errno ? strerror(errno) : "short write");
      return -1;
    }
    progress_set(prog, m->offset + done + n);
  }
  return 0;
}

/* Nil ranges stay holes of the truncated file. */
static int flatten_into(struct snap_image *im, int out, const char *name) {
  uint8_t *buf = aligned_alloc(4096, SNAP_CHUNK);
  if (!buf) {
    snap_error("out of memory for a buffer");
    return -1;
  }
  struct progress prog;
  int rc = 0;
  if (ftruncate(out, (off_t)im->h.size) < 0) {
    snap_error("%s: cannot set the size to %llu: %s", name,
               (unsigned long long)im->h.size, strerror(errno));
    rc = -1;
  }
  progress_start(&prog, "flatten", im->h.size);
  for (size_t i = 0; rc == 0 && i < im->h.nmappings; i++)
    if (im->build_of[i] != UFK_SNAP_NO_BUILD)
      rc = copy_mapping(im, i, out, name, buf, &prog);
  progress_end(&prog);
  free(buf);
  if (rc == 0 && fsync(out) < 0) {
    snap_error("%s: cannot sync: %s", name, strerror(errno));
    rc = -1;
  }
  return rc;
}

int cmd_flatten(int argc, char **argv) {
  optind = 1;
  if (getopt_long(argc, argv, "", (struct option[]){{0, 0, 0, 0}}, NULL) != -1)
    return SNAP_EXIT_USAGE;
  if (argc - optind != 3) {
    snap_error("flatten: expected STORE BUILD OUT (see --help)");
    return SNAP_EXIT_USAGE;
  }
  const char *dest = argv[optind + 2];
  struct snap_image im;
  char *tmp = NULL;
  int fd = -1, rc = -1;
  if (image_open(&im, argv[optind], argv[optind + 1]) < 0) goto out;
  if (asprintf(&tmp, "%s.tmp-XXXXXX", dest) < 0) {
    tmp = NULL;
    snap_error("out of memory");
    goto out;
  }
  if ((fd = mkstemp(tmp)) < 0) {
    snap_error("%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  /* mkstemp makes the file private; give it the usual mode. */
  mode_t um = umask(0);
  umask(um);
  fchmod(fd, 0666 & ~um);
  if (flatten_into(&im, fd, tmp) < 0) goto out;
  if (rename(tmp, dest) < 0) {
    snap_error("%s: cannot rename to %s: %s", tmp, dest, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (fd >= 0) close(fd);
  if (rc < 0 && fd >= 0) unlink(tmp);
  free(tmp);
  image_close(&im);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

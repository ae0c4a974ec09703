/* verify: every invariant of a generation and every byte it references. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "e2b.h"

struct verify {
  const char *store;
  uint8_t id[16];
  struct ufk_snap_header h;
  char *path;
  int problems;
};

__attribute__((format(printf, 2, 3))) static void
problem(struct verify *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("uffdkit-snap: verify: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  v->problems++;
}

static void check_own_id(struct verify *v) {
  if (!memcmp(v->h.build_id, v->id, 16)) return;
  char got[UFK_SNAP_UUID_STR], want[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(v->h.build_id, got);
  ufk_snap_id_str(v->id, want);
  problem(v, "%s: metadata BuildId (byte 32) is %s, but the folder is %s",
          v->path, got, want);
}

static void check_diff(struct verify *v, const struct ufk_snap_build *b,
                       const char *ids) {
  char *file = snap_path(v->store, ids, SNAP_MEMFILE);
  struct stat st;
  struct ufk_snap_err err;
  if (!file) {
    v->problems++;
    return;
  }
  if (stat(file, &st) < 0)
    problem(v, "%s: %s: the diff of build %s, used from mapping %zu of %s",
            file, strerror(errno), ids, b->first_entry, v->path);
  else if (ufk_snap_check_build_size(&v->h, b, (uint64_t)st.st_size, v->path,
                                     file, &err) < 0)
    problem(v, "%s", err.msg);
  free(file);
}

/* An older generation must describe the same memory. */
static void compare_ancestor(struct verify *v, const struct ufk_snap_header *a,
                             const char *path, const uint8_t id[16]) {
  const struct ufk_snap_header *h = &v->h;
  if (memcmp(a->build_id, id, 16))
    problem(v, "%s: metadata BuildId (byte 32) does not match its folder",
            path);
  if (a->size != h->size || a->block_size != h->block_size)
    problem(v, "%s: size %llu, block size %llu; %s has %llu, %llu", path,
            (unsigned long long)a->size, (unsigned long long)a->block_size,
            v->path, (unsigned long long)h->size,
            (unsigned long long)h->block_size);
  if (memcmp(a->base_build_id, h->base_build_id, 16))
    problem(v, "%s: metadata BaseBuildId (byte 48) differs from that of %s",
            path, v->path);
  if (a->generation >= h->generation)
    problem(v, "%s: generation %llu is not older than the %llu of %s", path,
            (unsigned long long)a->generation,
            (unsigned long long)h->generation, v->path);
}

static void check_ancestor(struct verify *v, const struct ufk_snap_build *b,
                           const char *ids) {
  if (!memcmp(b->id, v->id, 16)) return;
  char *path = snap_path(v->store, ids, SNAP_HEADER);
  struct ufk_snap_header a;
  struct ufk_snap_err err;
  if (!path) {
    v->problems++;
    return;
  }
  if (ufk_snap_load(path, &a, &err) < 0) {
    problem(v, "%s (build %s, used from mapping %zu of %s)", err.msg, ids,
            b->first_entry, v->path);
  } else {
    compare_ancestor(v, &a, path, b->id);
    v->problems += e2b_verify_sha(v->store, b->id, &a, path) != 0;
    ufk_snap_free(&a);
  }
  free(path);
}

static void check_own_diff(struct verify *v, const char *build) {
  const struct ufk_snap_entry *e = ufk_snap_entry_of(&v->h, v->id);
  char name[32];
  snprintf(name, sizeof name, "%s%s", SNAP_MEMFILE,
           ufk_snap_codec_suffix(ufk_snap_compressed(e) ? e->codec : 0));
  char *file = snap_path(v->store, build, name);
  struct stat st;
  if (file && stat(file, &st) < 0)
    problem(v, "%s: %s: every build folder holds its diff", file,
            strerror(errno));
  free(file);
}

/* Every byte the header references, read (and every frame decoded). */
static void read_all(struct verify *v, const char *build) {
  struct snap_image im;
  uint8_t *buf = malloc(SNAP_CHUNK);
  int rc = !buf || image_open(&im, v->store, build) < 0 ? -1 : 0;
  for (uint64_t off = 0; rc == 0 && off < im.h.size; off += SNAP_CHUNK) {
    uint64_t n = im.h.size - off < SNAP_CHUNK ? im.h.size - off : SNAP_CHUNK;
    rc = snap_check_interrupt() < 0 ? -1 : image_read(&im, buf, n, off);
  }
  if (rc < 0) v->problems++;
  if (buf) image_close(&im);
  free(buf);
}

static int verify_builds(struct verify *v, const char *build) {
  struct ufk_snap_build *b;
  size_t nb;
  if (ufk_snap_builds(&v->h, &b, &nb) < 0) {
    snap_error("%s: out of memory", v->path);
    return -1;
  }
  check_own_id(v);
  check_own_diff(v, build);
  for (size_t i = 0; i < nb; i++) {
    char ids[UFK_SNAP_UUID_STR];
    ufk_snap_id_str(b[i].id, ids);
    /* V4/V5 builds may be compressed: read_all checks them. */
    if (ufk_snap_format(&v->h) < 4) check_diff(v, &b[i], ids);
    check_ancestor(v, &b[i], ids);
  }
  if (ufk_snap_format(&v->h) >= 4) {
    v->problems += e2b_verify_sha(v->store, v->id, &v->h, v->path) != 0;
    read_all(v, build);
  }
  if (v->problems == 0)
    printf("%s: ok: generation %llu, %zu mappings over %zu builds\n", v->path,
           (unsigned long long)v->h.generation, v->h.nmappings, nb);
  free(b);
  return 0;
}

int cmd_verify(int argc, char **argv) {
  optind = 1;
  if (getopt_long(argc, argv, "", (struct option[]){{0, 0, 0, 0}}, NULL) != -1)
    return SNAP_EXIT_USAGE;
  if (argc - optind != 2) {
    snap_error("verify: expected STORE BUILD (see --help)");
    return SNAP_EXIT_USAGE;
  }
  struct verify v = {.store = argv[optind]};
  const char *build = argv[optind + 1];
  struct ufk_snap_err err;
  int rc = -1;
  if (snap_parse_id(build, v.id) < 0 ||
      !(v.path = snap_path(v.store, build, SNAP_HEADER)))
    goto out;
  if (ufk_snap_load(v.path, &v.h, &err) < 0) {
    problem(&v, "%s", err.msg);
    goto out;
  }
  rc = verify_builds(&v, build);
out:
  free(v.path);
  ufk_snap_free(&v.h);
  return rc < 0 || v.problems ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

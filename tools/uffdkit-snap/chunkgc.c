/* uffdkit-snap store gc: deletes the packs no manifest lists and what
 * interrupted imports left in tmp/, and with --repack rewrites the packs
 * mostly unreferenced (chunkrepack.c).  It holds the store's lock exclusively,
 * so it waits for running imports (which hold it shared) and they wait for
 * it: an import never sees a pack vanish between deduplicating against it
 * and publishing its manifest. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkrepack.h"
#include "chunkscan.h"
#include "snap.h"

static int remove_file(struct chunkstore *s, const char *sub,
                       const char *name) {
  char *path = cs_path(s, sub, name);
  int rc = path ? unlink(path) : -1;
  if (rc < 0 && path && errno != ENOENT)
    snap_error("%s: cannot delete: %s", path, strerror(errno));
  free(path);
  return rc < 0 && errno != ENOENT ? -1 : 0;
}

/* The index goes first: a reader finds a pack through its index. */
int cs_drop_pack(struct chunkstore *s, const char *hex) {
  char name[2 * UFK_STORE_ID + 8];
  snprintf(name, sizeof name, "%s.idx", hex);
  if (remove_file(s, "packs", name) < 0) return -1;
  snprintf(name, sizeof name, "%s.pack", hex);
  return remove_file(s, "packs", name);
}

static int clean_tmp(struct chunkstore *s, uint64_t *n) {
  char *path = cs_path(s, "tmp", NULL);
  DIR *d = path ? opendir(path) : NULL;
  int rc = 0;
  struct dirent *e;
  while (d && rc == 0 && (e = readdir(d)))
    if (e->d_name[0] != '.' && (rc = remove_file(s, "tmp", e->d_name)) == 0)
      ++*n;
  if (d) closedir(d);
  free(path);
  return rc;
}

static int repack(struct chunkstore *s, const struct cs_scan *sc,
                  double below) {
  struct cs_repack r;
  int rc = cs_repack(s, sc, below, &r);
  if (rc == 0)
    printf("%s: %llu packs under %.0f%% live repacked (%llu bytes into %llu), "
           "%llu manifests listing them published again\n",
           s->dir, (unsigned long long)r.packs, below * 100,
           (unsigned long long)r.bytes_before,
           (unsigned long long)r.bytes_after, (unsigned long long)r.manifests);
  return rc;
}

static int gc(struct chunkstore *s, double below) {
  struct cs_scan sc;
  if (cs_scan(s, NULL, &sc) < 0) {
    snap_error("%s: not collecting: every manifest must be readable", s->dir);
    cs_scan_free(&sc);
    return -1;
  }
  uint64_t packs = 0, bytes = 0, tmp = 0, loose = 0;
  int rc = 0;
  for (size_t p = 0; rc == 0 && p < s->npacks; p++) {
    if (sc.pack_used[p]) {
      for (uint32_t i = 0; i < s->packs[p].idx.nentries; i++)
        loose += !sc.used[p][i];
      continue;
    }
    rc = cs_drop_pack(s, s->packs[p].hex);
    packs++;
    bytes += s->packs[p].idx.pack_bytes;
  }
  if (rc == 0) rc = clean_tmp(s, &tmp);
  if (rc == 0 && below > 0) rc = repack(s, &sc, below);
  if (rc == 0)
    printf("%s: %llu unreferenced packs deleted (%llu bytes), %llu "
           "unfinished files removed; %zu snapshots keep %zu packs, holding "
           "%llu unreferenced chunks\n",
           s->dir, (unsigned long long)packs, (unsigned long long)bytes,
           (unsigned long long)tmp, sc.nsnaps, s->npacks - (size_t)packs,
           (unsigned long long)loose);
  cs_scan_free(&sc);
  return rc;
}

#define GC_USAGE                                                               \
  "usage: store gc STORE [--no-wait] [--repack[=SHARE]] [--key-file F | "      \
  "--key-env VAR]"

/* --repack's SHARE: a fraction in (0, 1], or a percentage with '%'. */
static int parse_share(const char *arg, double *out) {
  char *end;
  double v = strtod(arg, &end);
  if (*end == '%') v /= 100, end++;
  if (end == arg || *end || !(v > 0 && v <= 1)) {
    snap_error("--repack=%s: not a live share in (0, 1] (e.g. 0.5 or 50%%)",
               arg);
    return -1;
  }
  *out = v;
  return 0;
}

int cs_gc(int argc, char **argv) {
  static const struct option opts[] = {{"no-wait", no_argument, 0, 'n'},
                                       {"repack", optional_argument, 0, 'r'},
                                       {"key-file", required_argument, 0, 'k'},
                                       {"key-env", required_argument, 0, 'e'},
                                       {0}};
  int c, wait = 1;
  double below = 0;
  struct cs_opts o = {.keyless = 1};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'n')
      wait = 0;
    else if (c == 'r' && !optarg)
      below = 0.5;
    else if (c == 'r' && parse_share(optarg, &below) < 0)
      return SNAP_EXIT_USAGE;
    else if (c == 'k')
      o.key_file = optarg;
    else if (c == 'e')
      o.key_env = optarg;
    else if (c != 'r') {
      snap_error(GC_USAGE);
      return SNAP_EXIT_USAGE;
    }
  }
  if (argc - optind != 1) {
    snap_error(GC_USAGE);
    return SNAP_EXIT_USAGE;
  }
  struct chunkstore s;
  int rc = cs_open(&s, argv[optind], &o, 0, CS_LOCK_EXCLUSIVE, wait);
  if (rc == 0) rc = gc(&s, below);
  cs_close(&s);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

/* The fuzz seed corpora as a test of the normal suite: each seed is given
 * to the parser its fuzzer drives, once, as the daemon gives it.  A seed
 * named bad-* must be refused with a message; every other seed must be
 * accepted.  Without this a seed meant to be refused only proved that the
 * parser did not crash on it.
 *
 * usage: fuzz-seeds KIND DIR, KIND one of handshake config snapheader
 * snapv4 storemanifest storeindex storepack */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "handshake.h"
#include "index.h"
#include "manifest.h"
#include "pack.h"
#include "snapheader.h"
#include "snapv4_wrap.h"
#include "storekeys.h"

#define MAX_REGIONS 64 /* as the fuzzer */

static int parse_handshake(char *buf, size_t len, char *err, size_t errlen) {
  static struct handshake h;
  int r = handshake_parse(buf, len, MAX_REGIONS, &h, err, errlen);
  /* The whole seed is all the peer sends: still incomplete is refused. */
  if (r == HS_INCOMPLETE) snprintf(err, errlen, "incomplete at end of input");
  return r == HS_COMPLETE ? 0 : -1;
}

static int parse_config(char *buf, size_t len, char *err, size_t errlen) {
  (void)len;
  struct daemon_conf c;
  struct conf_err e;
  int r = conf_load_string(&c, buf, "seed.conf", &e);
  if (r < 0) conf_err_text(&e, err, errlen);
  conf_free(&c);
  return r;
}

static int parse_snapheader(char *buf, size_t len, char *err, size_t errlen) {
  struct ufk_snap_header h;
  struct ufk_snap_err e = {0};
  int r = ufk_snap_parse(buf, len, "seed", &h, &e);
  if (r < 0)
    snprintf(err, errlen, "%s", e.msg);
  else
    ufk_snap_free(&h);
  return r < 0 ? -1 : 0;
}

/* fuzz-snapv4's input: an inner block wrapped into a V4/V5 header. */
static int parse_snapv4(char *buf, size_t len, char *err, size_t errlen) {
  size_t flen;
  uint8_t *f = snapv4_wrap((const uint8_t *)buf, len, &flen);
  if (!f) {
    snprintf(err, errlen, "shorter than its 2 bytes");
    return -1;
  }
  int r = parse_snapheader((char *)f, flen, err, errlen);
  free(f);
  return r;
}

static int parse_storemanifest(char *buf, size_t len, char *err,
                               size_t errlen) {
  struct ufk_store_manifest m;
  struct ufk_store_err e = {{0}};
  const struct ufk_store_keys *k = fuzz_store_keys((const uint8_t *)buf, len);
  int r =
      ufk_store_manifest_parse((const uint8_t *)buf, len, "seed", k, &m, &e);
  if (r < 0)
    snprintf(err, errlen, "%s", e.msg);
  else
    ufk_store_manifest_free(&m);
  return r;
}

static int parse_storeindex(char *buf, size_t len, char *err, size_t errlen) {
  struct ufk_store_index x;
  struct ufk_store_err e = {{0}};
  const struct ufk_store_keys *k = fuzz_store_keys((const uint8_t *)buf, len);
  int r = ufk_store_index_parse((const uint8_t *)buf, len, "seed", k, &x, &e);
  if (r < 0)
    snprintf(err, errlen, "%s", e.msg);
  else
    ufk_store_index_free(&x);
  return r;
}

static int parse_storepack(char *buf, size_t len, char *err, size_t errlen) {
  struct ufk_store_pack_head p;
  struct ufk_store_err e = {{0}};
  int r = ufk_store_pack_parse((const uint8_t *)buf, len, "seed", &p, &e);
  if (r < 0) snprintf(err, errlen, "%s", e.msg);
  return r;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0, got;
  char *buf = malloc(cap + 1);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
  }
  fclose(f);
  if (buf) buf[n] = 0; /* config text is a C string */
  *len = n;
  return buf;
}

typedef int (*parse_fn)(char *, size_t, char *, size_t);

/* Returns 1 if the seed got the verdict its name asks for. */
static int check_seed(const char *dir, const char *name, parse_fn parse) {
  char path[4096], err[2048] = "";
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t len;
  char *buf = slurp(path, &len);
  if (!buf) {
    printf("FAIL %s: cannot read it\n", name);
    return 0;
  }
  int refused = parse(buf, len, err, sizeof err) < 0;
  free(buf);
  int bad = !strncmp(name, "bad-", 4);
  if (refused && !err[0]) {
    printf("FAIL %s: refused without a message\n", name);
    return 0;
  }
  printf("%s %s%s%s\n", refused == bad ? "ok  " : "FAIL", name,
         refused ? ": refused: " : ": accepted", refused ? err : "");
  return refused == bad;
}

int main(int argc, char **argv) {
  static const struct {
    const char *kind;
    parse_fn parse;
  } kinds[] = {
      {"handshake", parse_handshake},         {"config", parse_config},
      {"snapheader", parse_snapheader},       {"snapv4", parse_snapv4},
      {"storemanifest", parse_storemanifest}, {"storeindex", parse_storeindex},
      {"storepack", parse_storepack}};
  parse_fn parse = NULL;
  for (size_t i = 0; argc == 3 && i < sizeof kinds / sizeof *kinds; i++)
    if (!strcmp(argv[1], kinds[i].kind)) parse = kinds[i].parse;
  if (!parse) {
    fprintf(stderr, "usage: fuzz-seeds KIND DIR (see seeds.c)\n");
    return 2;
  }
  DIR *d = opendir(argv[2]);
  if (!d) return perror(argv[2]), 2;
  int seeds = 0, good = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    seeds++;
    good += check_seed(argv[2], e->d_name, parse);
  }
  closedir(d);
  printf("%d of %d seeds got the verdict their names ask for\n", good, seeds);
  return seeds > 0 && good == seeds ? 0 : 1;
}

/* uffdkit-snap store: dispatch, and the commands that read a store whole
 * (inspect, verify, export, delete). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkscan.h"
#include "chunkstore.h"
#include "manifest.h"
#include "snap.h"

static int parse_common(int argc, char **argv, struct cs_opts *o, int *json,
                        int *nowait, int min, int max, const char *usage) {
  static const struct option opts[] = {{"key-file", required_argument, 0, 'k'},
                                       {"key-env", required_argument, 0, 'K'},
                                       {"json", no_argument, 0, 'j'},
                                       {"no-wait", no_argument, 0, 'n'},
                                       {0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'k')
      o->key_file = optarg;
    else if (c == 'K')
      o->key_env = optarg;
    else if (c == 'j' && json)
      *json = 1;
    else if (c == 'n' && nowait)
      *nowait = 1;
    else {
      if (c != '?') snap_error("%s: option not taken here", argv[optind - 1]);
      snap_error("usage: store %s", usage);
      return -1;
    }
  }
  if (argc - optind < min || argc - optind > max) {
    snap_error("usage: store %s", usage);
    return -1;
  }
  return 0;
}

static int cmd_inspect_store(int argc, char **argv) {
  struct cs_opts o = {0};
  struct chunkstore s;
  struct cs_scan sc;
  int json = 0, rc = SNAP_EXIT_FAIL;
  o.keyless = 1;
  if (parse_common(argc, argv, &o, &json, NULL, 1, 2,
                   "inspect STORE [SNAPSHOT] [--json] [--key-file F | "
                   "--key-env VAR]") < 0)
    return SNAP_EXIT_USAGE;
  const char *only = argc - optind == 2 ? argv[optind + 1] : NULL;
  if (cs_open(&s, argv[optind], &o, 0, CS_LOCK_NONE, 0) == 0 &&
      cs_scan(&s, only, &sc) == 0) {
    json ? cs_scan_json(&s, &sc) : cs_scan_print(&s, &sc);
    rc = SNAP_EXIT_OK;
  }
  cs_scan_free(&sc);
  cs_close(&s);
  return rc;
}

static int verify_pack(struct chunkstore *s, uint32_t p, uint8_t *buf,
                       uint64_t *bad) {
  const struct ufk_store_index *x = &s->packs[p].idx;
  for (uint32_t i = 0; i < x->nentries; i++) {
    if (snap_check_interrupt() < 0) return -1;
    struct cs_loc l = {.pack = p, .entry = i};
    if (cs_read_chunk(s, &l, buf) < 0 && ++*bad && s->packs[p].fd < 0)
      return 0; /* the pack itself is refused: said once */
  }
  return 0;
}

static int cmd_verify_store(int argc, char **argv) {
  struct cs_opts o = {0};
  struct chunkstore s;
  struct cs_scan sc = {0};
  if (parse_common(argc, argv, &o, NULL, NULL, 1, 1,
                   "verify STORE [--key-file F | --key-env VAR]") < 0)
    return SNAP_EXIT_USAGE;
  uint64_t bad = 0, chunks = 0;
  int rc = cs_open(&s, argv[optind], &o, 0, CS_LOCK_NONE, 0);
  uint8_t *buf = rc == 0 ? malloc(s.info.chunk_size) : NULL;
  if (rc == 0 && (rc = cs_scan(&s, NULL, &sc)) < 0) bad++;
  struct progress prog;
  progress_start(&prog, "verify", s.npacks);
  for (uint32_t p = 0; buf && p < s.npacks; p++) {
    if (verify_pack(&s, p, buf, &bad) < 0) {
      rc = -1;
      break;
    }
    chunks += s.packs[p].idx.nentries;
    progress_set(&prog, p + 1);
  }
  progress_end(&prog);
  if (rc == 0 && buf)
    printf("%s: %zu snapshots, %zu packs, %llu chunks checked, %llu bad\n",
           argv[optind], sc.nsnaps, s.npacks, (unsigned long long)chunks,
           (unsigned long long)bad);
  free(buf);
  cs_scan_free(&sc);
  cs_close(&s);
  return rc == 0 && buf && !bad ? SNAP_EXIT_OK : SNAP_EXIT_FAIL;
}

static int export_chunks(struct chunkstore *s, struct ufk_store_manifest *m,
                         const struct cs_loc *l, int fd, const char *out) {
  uint8_t *buf = malloc(m->chunk_size);
  int rc = buf ? 0 : -1;
  struct progress prog;
  progress_start(&prog, "export", m->nchunks);
  for (uint64_t i = 0; rc == 0 && i < m->nchunks; i++) {
    uint64_t off = i * m->chunk_size, left = m->image_size - off;
    size_t n = left < m->chunk_size ? (size_t)left : m->chunk_size;
    if (snap_check_interrupt() < 0)
      rc = -1;
    else if (l[i].entry == UINT32_MAX)
      continue; /* a hole */
    else if (cs_read_chunk(s, &l[i], buf) < 0)
      rc = -1;
    else if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
      snap_error("%s: cannot write: %s", out, strerror(errno));
      rc = -1;
    }
    progress_set(&prog, i + 1);
  }
  progress_end(&prog);
  free(buf);
  return rc;
}

/* Written beside OUT and renamed over it once whole. */
static int export_to(struct chunkstore *s, const char *name, const char *out) {
  struct ufk_store_manifest m = {0};
  struct cs_loc *l = NULL;
  char *tmp = NULL;
  int fd = -1, rc = -1;
  if (cs_load_manifest(s, name, &m) < 0 || cs_resolve(s, &m, name, &l) < 0 ||
      asprintf(&tmp, "%s.tmp-%d", out, (int)getpid()) < 0)
    goto out;
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, (off_t)m.image_size) < 0) {
    snap_error("%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  if (export_chunks(s, &m, l, fd, tmp) < 0) goto out;
  if (fsync(fd) < 0 || rename(tmp, out) < 0)
    snap_error("%s: cannot finish: %s", out, strerror(errno));
  else
    rc = 0;
out:
  if (fd >= 0) close(fd);
  if (rc < 0 && fd >= 0) unlink(tmp);
  free(tmp);
  free(l);
  ufk_store_manifest_free(&m);
  return rc;
}

static int cmd_export_store(int argc, char **argv) {
  struct cs_opts o = {0};
  struct chunkstore s;
  if (parse_common(argc, argv, &o, NULL, NULL, 3, 3,
                   "export STORE SNAPSHOT OUT [--key-file F | --key-env "
                   "VAR]") < 0)
    return SNAP_EXIT_USAGE;
  int rc = cs_open(&s, argv[optind], &o, 0, CS_LOCK_NONE, 0) == 0
               ? export_to(&s, argv[optind + 1], argv[optind + 2])
               : -1;
  cs_close(&s);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

static int cmd_delete_store(int argc, char **argv) {
  struct cs_opts o = {0};
  if (parse_common(argc, argv, &o, NULL, NULL, 2, 2, "delete STORE SNAPSHOT") <
      0)
    return SNAP_EXIT_USAGE;
  const char *name = argv[optind + 1];
  if (!cs_name_ok(name)) {
    snap_error("'%s' is not a snapshot name", name);
    return SNAP_EXIT_USAGE;
  }
  char *path = snap_path(argv[optind], "snapshots", name);
  int rc = path ? unlink(path) : -1;
  if (rc < 0 && path)
    snap_error("%s: cannot delete: %s", path, strerror(errno));
  free(path);
  return rc < 0 ? SNAP_EXIT_FAIL : SNAP_EXIT_OK;
}

static const char store_usage[] =
    "Usage: uffdkit-snap store COMMAND ARGS...  (see uffdkit-snap(1))\n"
    "  import STORE NAME IMAGE [--base SNAPSHOT]\n"
    "  import STORE NAME BUILD --e2b E2B_STORE\n"
    "         [--chunk-size N] [--codec zstd|lz4|raw] [--level N]\n"
    "         [--pack-size N] [--key-file F | --key-env VAR]\n"
    "         [--check-by page|chunk] [--decode-by page|chunk] [--threads N]\n"
    "  inspect STORE [SNAPSHOT] [--json]\n"
    "  verify STORE\n"
    "  export STORE SNAPSHOT OUT\n"
    "  delete STORE SNAPSHOT\n"
    "  gc STORE [--no-wait] [--repack[=SHARE]] [--key-file F | --key-env "
    "VAR]\n";

int cmd_store(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
  } cmds[] = {{"import", cs_import},        {"inspect", cmd_inspect_store},
              {"verify", cmd_verify_store}, {"export", cmd_export_store},
              {"delete", cmd_delete_store}, {"gc", cs_gc}};
  if (argc < 2) {
    fputs(store_usage, stderr);
    return SNAP_EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].run(argc - 1, argv + 1);
  snap_error("unknown store command '%s'", argv[1]);
  fputs(store_usage, stderr);
  return SNAP_EXIT_USAGE;
}

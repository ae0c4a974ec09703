#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "chunkstore.h"
#include "index.h"
#include "info.h"
#include "manifest.h"
#include "pack.h"
#include "snap.h"

char *cs_path(const struct chunkstore *s, const char *a, const char *b) {
  return snap_path(s->dir, a, b);
}

int cs_name_ok(const char *name) {
  return ufk_store_name_ok(name);
}

int cs_load_file(const char *path, uint8_t **buf, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snap_error("%s: cannot open: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  *len = (size_t)st.st_size;
  *buf = malloc(*len ? *len : 1);
  int rc = *buf ? snap_pread(fd, *buf, *len, 0, path) : -1;
  close(fd);
  if (rc < 0) {
    free(*buf);
    *buf = NULL;
  }
  return rc;
}

int cs_sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0) {
    snap_error("%s: cannot sync the folder: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

int cs_publish(struct chunkstore *s, const char *sub, const char *name,
               const void *buf, size_t len) {
  char tmpname[64];
  snprintf(tmpname, sizeof tmpname, "tmp/obj-%d-%s", (int)getpid(), name);
  char *tmp = cs_path(s, tmpname, NULL), *dir = cs_path(s, sub, NULL);
  char *dst = cs_path(s, sub, name);
  int rc = -1, fd = -1;
  if (!tmp || !dir || !dst) goto out;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snap_error("%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  if (snap_write(fd, buf, len, tmp) < 0) goto out;
  if (fsync(fd) < 0 || rename(tmp, dst) < 0) {
    snap_error("%s: cannot publish as %s: %s", tmp, dst, strerror(errno));
    goto out;
  }
  rc = cs_sync_dir(dir);
out:
  if (fd >= 0) close(fd);
  if (rc < 0 && tmp) unlink(tmp);
  free(tmp);
  free(dir);
  free(dst);
  return rc;
}

static int make_dirs(const char *dir) {
  static const char *const subs[] = {"", "/packs", "/snapshots", "/tmp"};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", dir, subs[i]);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
      snap_error("%s: cannot create: %s", path, strerror(errno));
      return -1;
    }
  }
  return 0;
}

static int create_info(struct chunkstore *s, const struct cs_opts *o) {
  s->info.chunk_size = o->chunk_size ? o->chunk_size : CS_DEFAULT_CHUNK;
  /* New stores check a fault's pages, not its whole chunk, unless told. */
  s->keys.page_sums = o->check_by != CS_BY_CHUNK;
  /* and decode a fault's pages alone, at some more stored bytes, unless
   * told (docs/benchmark.md, "Page blocks"). */
  s->keys.page_blocks =
      o->decode_by ? o->decode_by == CS_BY_PAGE : s->keys.page_sums;
  s->info.flags = (s->keys.page_sums ? UFK_STORE_F_PAGE_SUMS : 0) |
                  (s->keys.page_blocks ? UFK_STORE_F_PAGE_BLOCKS : 0) |
                  (s->keys.encrypted ? UFK_STORE_F_ENCRYPTED : 0);
  if (s->keys.encrypted) memcpy(s->info.key_check, s->keys.check, UFK_STORE_ID);
  uint8_t b[UFK_STORE_INFO_SIZE];
  ufk_store_info_put(&s->info, b);
  return cs_publish(s, ".", "store", b, sizeof b);
}

/* Whether option `asked` (0: none, else CS_BY_PAGE or CS_BY_CHUNK)
 * contradicts the store's way (by_page), which is then said. */
static int contradicts(const char *path, const char *done, int asked,
                       int by_page) {
  if (!asked || (asked == CS_BY_PAGE) == by_page) return 0;
  snap_error("%s: the store's chunks are %s by %s, not by %s", path, done,
             by_page ? "page" : "chunk", by_page ? "chunk" : "page");
  return 1;
}

static int load_info(struct chunkstore *s, const struct cs_opts *o,
                     int create) {
  char *path = cs_path(s, "store", NULL);
  if (!path) return -1;
  int rc = -1;
  if (create && access(path, F_OK) < 0 && errno == ENOENT) {
    rc = make_dirs(s->dir) < 0 ? -1 : create_info(s, o);
    free(path);
    return rc;
  }
  uint8_t *buf;
  size_t len;
  struct ufk_store_err err;
  if (cs_load_file(path, &buf, &len) == 0) {
    rc = ufk_store_info_parse(buf, len, path, &s->info, &err) < 0 ||
                 ((!o->keyless || s->keys.encrypted) &&
                  ufk_store_keys_match(&s->keys, &s->info, path, &err) < 0)
             ? -1
             : 0;
    if (rc < 0) snap_error("%s", err.msg);
    s->keys.page_sums = !!(s->info.flags & UFK_STORE_F_PAGE_SUMS);
    s->keys.page_blocks = !!(s->info.flags & UFK_STORE_F_PAGE_BLOCKS);
    free(buf);
  }
  if (rc == 0 && o->chunk_size && o->chunk_size != s->info.chunk_size) {
    snap_error("%s: the store's chunk size is %u, not %u", path,
               s->info.chunk_size, o->chunk_size);
    rc = -1;
  }
  if (rc == 0 &&
      (contradicts(path, "checked", o->check_by, s->keys.page_sums) ||
       contradicts(path, "decoded", o->decode_by, s->keys.page_blocks)))
    rc = -1;
  free(path);
  return rc;
}

static int take_lock(struct chunkstore *s, enum cs_lock lock, int wait) {
  if (lock == CS_LOCK_NONE) return 0;
  char *path = cs_path(s, "lock", NULL);
  if (!path) return -1;
  s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  int op = lock == CS_LOCK_SHARED ? LOCK_SH : LOCK_EX;
  int rc = s->lock_fd < 0 ? -1 : flock(s->lock_fd, op | LOCK_NB);
  if (rc < 0 && errno == EWOULDBLOCK && wait) {
    fprintf(stderr, "uffdkit-snap: %s: waiting for %s to finish\n", s->dir,
            lock == CS_LOCK_SHARED ? "a gc" : "the imports running");
    while ((rc = flock(s->lock_fd, op)) < 0 && errno == EINTR &&
           !snap_interrupted)
      ;
  }
  if (rc < 0)
    snap_error("%s: cannot lock: %s", path,
               errno == EWOULDBLOCK
                   ? (lock == CS_LOCK_SHARED ? "a gc is running"
                                             : "an import is running")
                   : strerror(errno));
  free(path);
  return rc;
}

const struct ufk_store_keys *cs_meta_keys(const struct chunkstore *s) {
  return (s->info.flags & UFK_STORE_F_ENCRYPTED) && !s->keys.encrypted
             ? NULL
             : &s->keys;
}

static int load_index(struct chunkstore *s, const char *file) {
  char hex[2 * UFK_STORE_ID + 1];
  snprintf(hex, sizeof hex, "%.64s", file);
  char *path = cs_path(s, "packs", file);
  uint8_t *buf, id[UFK_STORE_ID];
  size_t len;
  struct ufk_store_index x;
  struct ufk_store_err err;
  int rc = path ? cs_load_file(path, &buf, &len) : -1;
  if (rc == 0) {
    rc = ufk_store_index_parse(buf, len, path, cs_meta_keys(s), &x, &err);
    if (rc == 0 &&
        (x.flags != s->info.flags || x.chunk_size != s->info.chunk_size ||
         ufk_store_unhex(hex, id, UFK_STORE_ID) < 0 ||
         memcmp(id, x.pack, UFK_STORE_ID))) {
      snprintf(err.msg, sizeof err.msg,
               "%s: its pack id, flags or chunk size are not the store's",
               path);
      ufk_store_index_free(&x);
      rc = -1;
    }
    if (rc < 0) snap_error("%s", err.msg);
    s->keys.page_sums = !!(s->info.flags & UFK_STORE_F_PAGE_SUMS);
    s->keys.page_blocks = !!(s->info.flags & UFK_STORE_F_PAGE_BLOCKS);
    free(buf);
  }
  free(path);
  return rc < 0 ? -1 : cs_add_pack(s, hex, &x);
}

static int is_index_name(const char *n) {
  return strlen(n) == 2 * UFK_STORE_ID + 4 && !strcmp(n + 64, ".idx") &&
         strspn(n, "0123456789abcdef") == 2 * UFK_STORE_ID;
}

static int load_indexes(struct chunkstore *s) {
  char *path = cs_path(s, "packs", NULL);
  DIR *d = path ? opendir(path) : NULL;
  if (!d) {
    if (path) snap_error("%s: cannot list: %s", path, strerror(errno));
    free(path);
    return -1;
  }
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)))
    if (is_index_name(e->d_name)) rc = load_index(s, e->d_name);
  closedir(d);
  free(path);
  return rc;
}

int cs_open(struct chunkstore *s, const char *dir, const struct cs_opts *o,
            int create, enum cs_lock lock, int wait) {
  memset(s, 0, sizeof *s);
  s->lock_fd = -1;
  struct ufk_store_err err;
  if (!(s->dir = strdup(dir))) return -1;
  if (ufk_store_keys_load(&s->keys, o->key_file, o->key_env, &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  if (create && make_dirs(dir) < 0) return -1;
  if (take_lock(s, lock, wait) < 0 || load_info(s, o, create) < 0) return -1;
  return load_indexes(s);
}

void cs_close(struct chunkstore *s) {
  for (size_t i = 0; i < s->npacks; i++) {
    ufk_store_index_free(&s->packs[i].idx);
    if (s->packs[i].fd >= 0) close(s->packs[i].fd);
    free(s->packs[i].path);
  }
  free(s->packs);
  free(s->tab);
  if (s->lock_fd >= 0) close(s->lock_fd);
  ufk_store_keys_wipe(&s->keys);
  free(s->dir);
  memset(s, 0, sizeof *s);
  s->lock_fd = -1;
}

#include "pluginpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"

static int add_dir(char dirs[][PATH_MAX], int n, int max, const char *d,
                   size_t len) {
  if (len == 0 || len >= PATH_MAX || n == max) return n;
  for (int i = 0; i < n; i++)
    if (strlen(dirs[i]) == len && !strncmp(dirs[i], d, len)) return n;
  memcpy(dirs[n], d, len);
  dirs[n][len] = 0;
  return n + 1;
}

int plugin_search_path(const char *extra, char dirs[][PATH_MAX], int max) {
  const char *builtin = plugin_default_dir();
  int n = add_dir(dirs, 0, max, builtin, strlen(builtin));
  for (const char *p = extra; p && *p;) {
    size_t len = strcspn(p, ":");
    n = add_dir(dirs, n, max, p, len);
    p += len + (p[len] == ':');
  }
  return n;
}

enum node { PLUGIN_FILE, PLUGIN_DIR, ABOVE };

/* The same rule for the file and each directory above it, so that no one
 * but root can put code in the place root loads it from.  Only above the
 * plugin's own directory may a root-owned sticky one (/tmp) be, where no
 * one can rename or replace what root made. */
static int check_node(const char *node, const char *file, enum node kind,
                      char *err, size_t errlen) {
  struct stat st;
  if (lstat(node, &st) < 0) {
    snprintf(err, errlen, "%s: %s: %s", file, node, strerror(errno));
    return -1;
  }
  const char *what = kind == PLUGIN_FILE ? "the plugin file" : "directory";
  if (st.st_uid != 0) {
    snprintf(err, errlen,
             "%s: refusing to load it: %s %s is owned by uid %u, not root",
             file, what, node, (unsigned)st.st_uid);
    return -1;
  }
  int sticky_dir =
      kind == ABOVE && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !sticky_dir) {
    snprintf(err, errlen,
             "%s: refusing to load it: %s %s is writable by %s (mode %04o)",
             file, what, node, st.st_mode & S_IWOTH ? "others" : "its group",
             (unsigned)(st.st_mode & 07777));
    return -1;
  }
  return 0;
}

int plugin_file_trusted(const char *path, char *err, size_t errlen) {
  if (geteuid() != 0) return 0;
  char real[PATH_MAX];
  if (!realpath(path, real)) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  enum node kind = PLUGIN_FILE;
  if (check_node(real, path, kind, err, errlen) < 0) return -1;
  for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
    kind = kind == PLUGIN_FILE ? PLUGIN_DIR : ABOVE;
    if (slash == real) return check_node("/", path, kind, err, errlen);
    *slash = 0;
    if (check_node(real, path, kind, err, errlen) < 0) return -1;
  }
  return 0;
}

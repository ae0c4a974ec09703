#include "pluginpath.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef UFFDKIT_PLUGIN_SUBDIR
#error "UFFDKIT_PLUGIN_SUBDIR must be defined by the build"
#endif

const char *plugin_default_dir(void) {
  static char dir[PATH_MAX];
  if (dir[0]) return dir;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) return UFFDKIT_PLUGIN_SUBDIR;
  exe[n] = 0;
  /* <prefix>/bin/uffdkit → <prefix>/<libdir>/uffdkit/plugins */
  snprintf(dir, sizeof dir, "%s/../%s", dirname(exe), UFFDKIT_PLUGIN_SUBDIR);
  char real[PATH_MAX];
  if (realpath(dir, real)) snprintf(dir, sizeof dir, "%s", real);
  return dir;
}

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
                      struct conf_err *err) {
  struct stat st;
  if (lstat(node, &st) < 0)
    return conf_err_at(err, file, -1, 0, "%s: %s", node, strerror(errno));
  const char *what = kind == PLUGIN_FILE ? "the plugin file" : "directory";
  if (st.st_uid != 0)
    return conf_err_at(err, file, -1, 0,
                       "refusing to load it: %s %s is owned by uid %u, not "
                       "root",
                       what, node, (unsigned)st.st_uid);
  int sticky_dir =
      kind == ABOVE && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !sticky_dir)
    return conf_err_at(err, file, -1, 0,
                       "refusing to load it: %s %s is writable by %s (mode "
                       "%04o)",
                       what, node,
                       st.st_mode & S_IWOTH ? "others" : "its group",
                       (unsigned)(st.st_mode & 07777));
  return 0;
}

int plugin_file_trusted(const char *path, struct conf_err *err) {
  if (geteuid() != 0) return 0;
  char real[PATH_MAX];
  if (!realpath(path, real))
    return conf_err_at(err, path, -1, 0, "%s", strerror(errno));
  enum node kind = PLUGIN_FILE;
  if (check_node(real, path, kind, err) < 0) return -1;
  for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
    kind = kind == PLUGIN_FILE ? PLUGIN_DIR : ABOVE;
    if (slash == real) return check_node("/", path, kind, err);
    *slash = 0;
    if (check_node(real, path, kind, err) < 0) return -1;
  }
  return 0;
}

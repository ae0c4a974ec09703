/* Where plugins are looked for, and whether a file may be loaded at all. */
#ifndef UFFDKIT_CORE_PLUGINPATH_H
#define UFFDKIT_CORE_PLUGINPATH_H

#include <limits.h>
#include <stddef.h>

#include "conferr.h"

#define PLUGIN_PATH_MAX 16

/* The directory the daemon looks in when none is configured: the one it
 * was installed with, relative to the executable. */
const char *plugin_default_dir(void);

/* The search path: the built-in directory first, then each directory of
 * `extra` (colon-separated, may be NULL) in order, without repeats.
 * Returns how many were written to dirs. */
int plugin_search_path(const char *extra, char dirs[][PATH_MAX], int max);

/* As root, a plugin file is loaded only if it and every directory above it
 * are owned by root and writable by no one else (a root-owned sticky
 * directory such as /tmp may be on the way).  0 if it may be loaded;
 * -1 with err about the file (err->file) saying what is wrong.  Other
 * users load what they can read: nothing they load runs with more than
 * their rights. */
int plugin_file_trusted(const char *path, struct conf_err *err);

#endif

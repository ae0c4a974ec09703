/* Loading plugins: dlopen, ABI checks, and the registry of loaded ones. */
#ifndef UFFDKIT_CORE_PLUGIN_H
#define UFFDKIT_CORE_PLUGIN_H

#include <stddef.h>
#include <uffdkit/plugin.h>

struct plugin {
  char *name;
  char *path;
  void *dl;
  /* The plugin's struct, copied up to its struct_size; the rest zero. */
  struct ufk_plugin p;
  struct plugin *next;
};

/* The directory the daemon looks in when none is configured: the one it
 * was installed with, relative to the executable. */
const char *plugin_default_dir(void);

/* Finds plugin `name` (or a path containing '/') on the search path made of
 * the built-in directory and dirs (colon-separated, or NULL), loading it once.
 * want_layer: 1 a layer is required, 0 a source.  NULL with err set. */
const struct plugin *plugin_get(const char *dir, const char *name,
                                int want_layer, char *err, size_t errlen);
/* Loads a plugin file and checks it, without calling load(). */
int plugin_open_file(const char *path, struct plugin *out, char *err,
                     size_t errlen);
void plugin_close_file(struct plugin *p);
void plugin_unload_all(void);

/* --list-plugins and --describe; dirs: directories added to the search
 * path (see plugin_search_path), or NULL. */
int plugin_list(const char *dir, int json);
int plugin_describe(const char *dir, const char *name);

#endif

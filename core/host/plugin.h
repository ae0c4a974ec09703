/* Loading plugins: dlopen, ABI checks, and the registry of loaded ones. */
#ifndef UFFDKIT_CORE_PLUGIN_H
#define UFFDKIT_CORE_PLUGIN_H

#include <stddef.h>
#include <uffdkit/plugin.h>

#include "pluginpath.h"

struct plugin {
  char *name;
  char *path;
  void *dl;
  /* The plugin's struct, copied up to its struct_size; the rest zero. */
  struct ufk_plugin p;
  struct plugin *next;
};

/* Finds plugin `name` (or a path containing '/') on the search path made of
 * the built-in directory and dirs (colon-separated, or NULL), loading it once
 * (its load() is given host).  want_layer: 1 a layer is required, 0 a
 * source.  NULL with err set: about the plugin file (err->file, no line)
 * when the file is wrong, about nothing when none fits. */
const struct plugin *plugin_get(const char *dir, const char *name,
                                int want_layer, const struct ufk_host *host,
                                struct conf_err *err);
/* Loads a plugin file and checks it, without calling load(): 0, or -1 with
 * err about the file (err->file is path). */
int plugin_open_file(const char *path, struct plugin *out,
                     struct conf_err *err);
void plugin_close_file(struct plugin *p);
void plugin_unload_all(void);

/* --list-plugins and --describe; dirs: directories added to the search
 * path (see plugin_search_path), or NULL. */
int plugin_list(const char *dir, int json);
int plugin_describe(const char *dir, const char *name);

#endif

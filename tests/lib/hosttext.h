/* The plugin host's loaders with their error as the text every caller
 * prints (conf_err_text: "FILE:LINE: MESSAGE"), as conftext.h does for
 * the configuration's; for the unit tests that link the plugin host. */
#ifndef UFFDKIT_TEST_HOSTTEXT_H
#define UFFDKIT_TEST_HOSTTEXT_H

#include "conftext.h"
#include "plugin.h"
#include "stack.h"

static inline struct stack *
stack_build_t(const struct ufk_host *host, const struct daemon_conf *conf,
              const struct listener_conf *l, const char *plugin_dir,
              struct listener_stats *stats, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  struct stack *s = stack_build(host, conf, l, plugin_dir, stats, &e);
  if (!s) conf_err_text(&e, err, len);
  return s;
}

static inline int stack_check_t(const struct ufk_host *host,
                                const struct daemon_conf *conf,
                                const struct listener_conf *l,
                                const char *plugin_dir, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(stack_check(host, conf, l, plugin_dir, &e), &e, err, len);
}

static inline int plugin_open_file_t(const char *path, struct plugin *out,
                                     char *err, size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(plugin_open_file(path, out, &e), &e, err, len);
}

static inline const struct plugin *
plugin_get_t(const char *dir, const char *name, int want_layer,
             const struct ufk_host *host, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  const struct plugin *p = plugin_get(dir, name, want_layer, host, &e);
  if (!p) conf_err_text(&e, err, len);
  return p;
}

#endif

/* The configuration loaders with their error as the text every caller
 * prints (conf_err_text: "FILE:LINE: MESSAGE"), which is what the unit
 * tests check; "" when there is none. */
#ifndef UFFDKIT_TEST_CONFTEXT_H
#define UFFDKIT_TEST_CONFTEXT_H

#include <stddef.h>

#include "config.h"

static inline int conftext_ret(int r, const struct conf_err *e, char *err,
                               size_t len) {
  conf_err_text(e, err, len);
  return r;
}

static inline int conf_load_string_t(struct daemon_conf *c, const char *text,
                                     const char *name, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(conf_load_string(c, text, name, &e), &e, err, len);
}

static inline int conf_load_file_t(struct daemon_conf *c, const char *path,
                                   char *err, size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(conf_load_file(c, path, &e), &e, err, len);
}

static inline int conf_from_cli_t(struct daemon_conf *c, const char *socket,
                                  const char *plugin, char *const *kv, int nkv,
                                  const struct cli_globals *g, char *err,
                                  size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(conf_from_cli(c, socket, plugin, kv, nkv, g, &e), &e, err,
                      len);
}

static inline int template_check_value_t(const char *what, const char *s,
                                         size_t max, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  return conftext_ret(template_check_value(what, s, max, &e), &e, err, len);
}

static inline char *
template_expand_t(const struct daemon_conf *c, const struct template_conf *t,
                  const char *id, const struct template_var *vars, int nvars,
                  const uid_t *uid, char *err, size_t len) {
  struct conf_err e = {.line = 0};
  char *text = template_expand(c, t, id, vars, nvars, uid, &e);
  if (!text) conf_err_text(&e, err, len);
  return text;
}

#endif

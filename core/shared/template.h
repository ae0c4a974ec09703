/* Templates: listeners with {var} placeholders that `serve` (see
 * docs/control-protocol.md) makes into per-restore listeners.  The
 * operator declares which variables an orchestrator may set; values are
 * checked here, so an orchestrator can neither choose a plugin nor reach a
 * path the template does not allow. */
#ifndef UFFDKIT_CORE_TEMPLATE_H
#define UFFDKIT_CORE_TEMPLATE_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conferr.h"

#define TEMPLATE_MAX_VARS 16
#define TEMPLATE_MAX_VALUE 64 /* bytes of one variable's value */
#define TEMPLATE_MAX_EXPIRY_MS 86400000ll
#define TEMPLATE_START_TIMEOUT_S 60 /* start_timeout's default */

struct daemon_conf;

struct template_conf {
  const char *name;
  const char *vars[TEMPLATE_MAX_VARS];
  int n_vars;
  uint64_t expiry_ns;        /* 0: never */
  uint64_t start_timeout_ns; /* a serve waits this long for its source */
  int one_shot;
  uid_t *serve_uids;
  int n_serve_uids;
  config_setting_t *setting; /* the template group */
};

struct template_var {
  const char *name;
  const char *value;
};

/* Reads the top-level `templates` list of c, if any, checking each
 * template by expanding it once.  0, or -1 with "file:line: why" in err. */
int template_load_all(struct daemon_conf *c, struct conf_err *err);
void template_free_all(struct daemon_conf *c);

const struct template_conf *template_find(const struct daemon_conf *c,
                                          const char *name);

/* Whether s may be a variable's value or a restore id: 1..max bytes of
 * [A-Za-z0-9._-], not starting with '.'.  0, or -1 with why in err. */
int template_check_value(const char *what, const char *s, size_t max,
                         struct conf_err *err);

/* The configuration text ("listeners = ( { name = ID; ... } );") of t with
 * vars set and {id} = id, and, when uid is not NULL, the socket given to
 * *uid who alone may connect.  Returns it (malloc'd), or NULL with why in
 * err: every declared variable must be given, no other, each valid. */
char *template_expand(const struct daemon_conf *c,
                      const struct template_conf *t, const char *id,
                      const struct template_var *vars, int nvars,
                      const uid_t *uid, struct conf_err *err);

#endif

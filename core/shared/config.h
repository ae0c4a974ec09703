/* The daemon's configuration: a libconfig file, or one listener from the
 * command line.  Both the supervisor and the worker load the same text, so
 * they agree on every listener. */
#ifndef UFFDKIT_CORE_CONFIG_H
#define UFFDKIT_CORE_CONFIG_H

#include <libconfig.h>
#include <stdint.h>
#include <sys/types.h>

#include "conferr.h"
#include "template.h"

#define CONF_MAX_REGIONS 64
/* A duration left to the daemon, chosen per session (spin). */
#define DURATION_AUTO UINT64_MAX

enum source_error_policy {
  ON_ERROR_KILL = 0,
  ON_ERROR_SIGBUS = 1,
  ON_ERROR_HANG = 2,
};

enum wset_mode {
  WSET_OFF = 0,
  WSET_RECORD = 1,
  WSET_REPLAY = 2,
  WSET_AUTO = 3,
};

struct listener_conf {
  const char *name;
  const char *socket;
  const char *socket_mode_str;
  unsigned socket_mode;
  const char *socket_owner;
  const char *socket_group;
  uid_t *allow_uids;
  int n_allow_uids;
  gid_t *allow_gids;
  int n_allow_gids;
  int64_t max_sessions;
  uint64_t handshake_timeout_ns;
  uint64_t max_handshake_bytes;
  int64_t max_regions;
  const char *on_source_error_str;
  int on_source_error;
  int64_t fault_around; /* pages, 0: off */
  uint64_t spin_ns;     /* busy-poll window after a fault, 0: off, or AUTO */
  const char *wset_path;
  const char *wset_mode_str;
  int wset_mode;
  uint64_t record_for_ns; /* 0: until the session ends */
  int64_t replay_max_gap; /* unlisted pages a replay run may copy across */
  int background_fill;
  config_setting_t *source;  /* the group { plugin = ...; ... } */
  config_setting_t *layers;  /* list of groups, or NULL */
  config_setting_t *setting; /* the listener group itself */
};

struct daemon_conf {
  config_t cfg;
  char *file; /* name used in messages */
  char *text; /* the exact text loaded, handed to the worker */
  const char *plugin_dir;
  const char *log_level_str;
  int log_level;
  const char *log_format;
  const char *control_socket;
  const char *metrics_listen;
  uint64_t worker_restart_delay_ns;
  int64_t max_restores; /* live per-restore listeners (template.h) */
  uid_t *control_allow_uids;
  int n_control_allow_uids;
  gid_t *control_allow_gids;
  int n_control_allow_gids;
  struct listener_conf *listeners;
  int n_listeners;
  struct template_conf *templates;
  int n_templates;
};

/* Each returns 0, or -1 with what is wrong, and its file and line, in
 * err. */
int conf_load_file(struct daemon_conf *c, const char *path,
                   struct conf_err *err);
int conf_load_string(struct daemon_conf *c, const char *text, const char *name,
                     struct conf_err *err);
/* The text in fd (read from offset 0; fd stays open), named name. */
int conf_load_fd(struct daemon_conf *c, int fd, const char *name,
                 struct conf_err *err);
/* What the command line may set besides the listener's source. */
struct cli_globals {
  const char *name;           /* of the listener; NULL: "cli" */
  const char *control_socket; /* NULL: the default; "": none */
  const char *metrics;        /* NULL: none */
};
/* One listener on socket, source plugin with key=value settings; g may be
 * NULL (every default). */
int conf_from_cli(struct daemon_conf *c, const char *socket, const char *plugin,
                  char *const *kv, int nkv, const struct cli_globals *g,
                  struct conf_err *err);
void conf_free(struct daemon_conf *c);

const struct listener_conf *conf_find_listener(const struct daemon_conf *c,
                                               const char *name);
/* The name of a listener's stack, as the log, ctl and the metrics show it:
 * the source's plugin, then each layer in the order listed, joined by '+'
 * ("http+cache+retry"); a plugin given by path is named by its file
 * (".../libfoo.so": "foo"). */
void conf_stack_name(const struct listener_conf *l, char *buf, size_t len);
/* Sets err to the message, at setting s's file and line; -1. */
int conf_fail(const struct daemon_conf *c, const config_setting_t *s,
              struct conf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "file:line" of a setting, for messages. */
const char *conf_where(const struct daemon_conf *c, const config_setting_t *s,
                       char *buf, size_t len);

#endif

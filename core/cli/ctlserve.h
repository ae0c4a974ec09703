/* `uffdkit ctl serve|stop|watch`: per-restore listeners (see
 * docs/control-protocol.md and uffdkit-ctl(8)). */
#ifndef UFFDKIT_CORE_CTLSERVE_H
#define UFFDKIT_CORE_CTLSERVE_H

#include <stddef.h>

struct ctl_serve_opts {
  int wait_ready;
  const char *id;
  const char *expiry; /* seconds, or NULL */
  int no_one_shot;
  const char *uid;
  int keep_sessions;
};

/* Whether cmd is one of these commands. */
int ctl_serve_cmd(const char *cmd);
/* Runs cmd with its arguments args[0..n).  Returns the exit status. */
int ctl_serve_run(const char *path, const char *cmd, char **args, int n,
                  const struct ctl_serve_opts *o, int json, int timeout_ms);

/* ctl.c */
int ctl_connect(const char *path);
int ctl_send_all(int fd, const char *s, size_t n);

#endif

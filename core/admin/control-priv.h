/* The control server's state, shared by control.c (the socket, the
 * requests of the first protocol) and serve.c (serve, stop, watch,
 * version: answers that come later, and event streams).  Not an API:
 * only these files include it. */
#ifndef UFFDKIT_CORE_CONTROL_PRIV_H
#define UFFDKIT_CORE_CONTROL_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control.h"
#include "intake.h"

#define CONTROL_WATCH_MAX_QUEUED (1024 * 1024) /* bytes of events not read */

struct client {
  uint64_t id; /* for answers given later (control_reply) */
  int fd;
  char *in;
  size_t inlen, incap;
  char *out;
  size_t outlen, outoff;
  uint64_t deadline;
  int closing;       /* close once out is sent */
  int writing;       /* registered for EPOLLOUT */
  int held;          /* waits for a serve answer: reads nothing meanwhile */
  int watch;         /* carries events from now on */
  char watch_id[64]; /* "": every restore */
  struct client *next;
};

struct control {
  int ep;
  int lfd; /* -1: no control socket */
  char *path;
  dev_t dev;
  ino_t ino;
  int tag_listen, tag_http;
  struct intake intake;
  struct metrics_http *http;
  const struct control_view *v;
  struct stats_rates *rates;
  struct client *clients;
  int nclients;
  uint64_t next_client;
  uid_t *allow_uids; /* besides root and our own user */
  int n_allow_uids;
  gid_t *allow_gids;
  int n_allow_gids;
};

/* control.c */
/* Sends what is queued and rearms the client; drops it when gone. */
void control_kick(struct control *c, struct client *cl);
/* Rearms the client's events after held or watch changed. */
void control_rearm(struct control *c, struct client *cl);

/* serve.c: handles a request of cmd serve, stop, watch or version, and
 * any request with a "v" other than 1.  Returns 1 when it did (an answer
 * queued, or the client held), 0 when control_respond() is to. */
int admin_request(struct control *c, struct client *cl, const char *line,
                  size_t len);

#endif

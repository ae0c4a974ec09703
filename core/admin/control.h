/* The control socket and the metrics endpoint, served by the supervisor.
 *
 * `uffdkit ctl` talks to the daemon over a Unix stream socket in JSON lines:
 * one request object per line, one response object per line.  Requests:
 *   {"cmd":"list"}  {"cmd":"stats"}  {"cmd":"metrics"}  {"cmd":"reload"}
 *   {"cmd":"drain","listener":"NAME"}
 * Errors are {"error":"..."}.  Metrics are also served over HTTP
 * (GET /metrics) when the global setting `metrics` is set.
 *
 * Everything runs on the supervisor's thread, from its epoll loop: the
 * supervisor adds control_fd() to its epoll set, calls control_run() once
 * per turn of its loop and bounds its epoll_wait() with control_timeout().
 * Every socket is non-blocking; nothing here ever waits.
 *
 * All figures come from the statistics model (stats.h), which reads shared
 * memory; the worker is never asked. */
#ifndef UFFDKIT_CORE_CONTROL_H
#define UFFDKIT_CORE_CONTROL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "stats.h"

#define CONTROL_DEFAULT_SOCKET "/run/uffdkit/control.sock"
#define CONTROL_MAX_REQUEST (64 * 1024) /* bytes of one request line */
/* An orchestrator holds a connection per serve in flight until its source
 * has started: hundreds at once. */
#define CONTROL_MAX_CLIENTS 512
#define CONTROL_CLIENT_TIMEOUT_MS 5000 /* to send a request or read a reply */

/* What the supervisor shows (the statistics model, stats.h) and the
 * commands it takes, read through callbacks each time a request or a
 * scrape is served, so reloads need no notice. */
struct control_view {
  struct stats_view stats;
  /* Each returns 0, or -1 with a message in err.  NULL: not supported.
   * reload may also leave a note in err on success: which generation it
   * started, or that it runs after the one loading. */
  int (*reload)(void *opaque, char *err, size_t len);
  int (*drain)(void *opaque, const char *listener, char *err, size_t len);
  /* Per-restore listeners (docs/control-protocol.md).  serve returns 0
   * when its answer is to come through control_reply(c, client, ...),
   * or -1 with err and *code; stop returns the answer, or NULL with err
   * and *code.  NULL: not supported. */
  int (*serve)(void *opaque, uint64_t client, const cJSON *req, char *err,
               size_t len, const char **code);
  cJSON *(*stop)(void *opaque, const cJSON *req, char *err, size_t len,
                 const char **code);
  /* Adds to the answer of cmd ("list", "stats") what the listeners do not
   * hold (restores, templates).  May be NULL. */
  void (*extend)(void *opaque, const char *cmd, cJSON *answer);
  void *opaque;
};

struct control;

/* Opens the control socket (conf->control_socket, or CONTROL_DEFAULT_SOCKET
 * when unset; "" disables it) and, when conf->metrics_listen is set, the
 * HTTP metrics endpoint.  Returns 0 with *out set (NULL when there is
 * nothing to serve), or -1 with a message in err.  A socket set in the
 * config that cannot be created is an error; the default one is only
 * warned about, so several daemons can run without a config. */
int control_open(struct control **out, const struct daemon_conf *conf,
                 const struct control_view *view, char *err, size_t errlen);
/* The fd to watch for EPOLLIN (level-triggered); -1 if c is NULL. */
int control_fd(const struct control *c);
/* Serves whatever is ready and drops clients past their deadline. */
void control_run(struct control *c);
/* The smaller of timeout_ms (-1: none) and the time until control_run()
 * must run again. */
int control_timeout(const struct control *c, int timeout_ms);
/* The counters object of the protocol (`stats`, the `ended` event). */
cJSON *control_counters_json(const struct session_counters *c);
/* {"error":msg,"code":code}, the error answer of the protocol. */
cJSON *control_error(const char *msg, const char *code);
/* The answer to a serve request of client (takes answer; a client gone
 * meanwhile is skipped), and the requests it sent behind it. */
void control_reply(struct control *c, uint64_t client, cJSON *answer);
/* Sends event (taken) to every watcher of restore id. */
void control_event(struct control *c, const char *id, cJSON *event);

/* Closes every socket; removes the control socket's file if it is still
 * the one this process created. */
void control_close(struct control *c);

/* ---- for tests and for ctl ---- */

enum control_cmd {
  CONTROL_LIST,
  CONTROL_STATS,
  CONTROL_METRICS,
  CONTROL_RELOAD,
  CONTROL_DRAIN,
};

struct control_request {
  enum control_cmd cmd;
  char listener[64]; /* CONTROL_DRAIN */
};

/* Parses one request line (without its newline).  Returns 0, or -1 with a
 * message in err. */
int control_parse_request(const char *line, size_t len,
                          struct control_request *req, char *err,
                          size_t errlen);

/* The response to one request line, as a NUL-terminated JSON object
 * without a newline (malloc'd), or NULL when out of memory.  now_ns is
 * CLOCK_MONOTONIC, now_unix_ns CLOCK_REALTIME; rates may be NULL. */
char *control_respond(const struct control_view *v, struct stats_rates *r,
                      const char *line, size_t len, uint64_t now_ns,
                      uint64_t now_unix_ns);

/* {"error":"msg"} (malloc'd), or NULL when out of memory. */
char *control_error_reply(const char *msg);

#endif

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
 * All figures are read from shared memory (struct listener_stats and each
 * live struct session_shm) through a struct control_view the supervisor
 * fills; the worker is never asked. */
#ifndef UFFDKIT_CORE_CONTROL_H
#define UFFDKIT_CORE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shm.h"

#define CONTROL_DEFAULT_SOCKET "/run/uffdkit/control.sock"
#define CONTROL_MAX_REQUEST (64 * 1024) /* bytes of one request line */
#define CONTROL_MAX_CLIENTS 32
#define CONTROL_CLIENT_TIMEOUT_MS 5000 /* to send a request or read a reply */

/* A listener as the supervisor shows it.  The strings are copied before
 * the callback returns, so they may live on the caller's stack. */
struct control_listener {
  const char *name;
  const char *socket; /* "" when it has none (removed from the config) */
  const char *source; /* "http+cache+retry": conf_stack_name() */
  int accepting;      /* its socket is open */
  struct listener_stats *stats;
};

typedef void (*control_listener_fn)(void *arg,
                                    const struct control_listener *l);
typedef void (*control_session_fn)(void *arg, const struct session_shm *s);

/* What the supervisor shows, read through callbacks each time a request
 * or a scrape is served, so reloads need no notice. */
struct control_view {
  /* Calls fn(arg, l) for every listener, including those removed from
   * the config that still have live sessions. */
  void (*each_listener)(void *opaque, control_listener_fn fn, void *arg);
  /* Calls fn(arg, shm) for every live session. */
  void (*each_session)(void *opaque, control_session_fn fn, void *arg);
  /* Each returns 0, or -1 with a message in err.  NULL: not supported.
   * reload may also leave a note in err on success: which generation it
   * started, or that it runs after the one loading. */
  int (*reload)(void *opaque, char *err, size_t len);
  int (*drain)(void *opaque, const char *listener, char *err, size_t len);
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
/* Closes every socket; removes the control socket's file if it is still
 * the one this process created. */
void control_close(struct control *c);

/* A copy of the view's listeners, sorted by name. */
struct control_listeners {
  struct control_listener *l;
  int n;
  void *mem;
};
/* Returns 0, or -1 when out of memory. */
int control_listeners_get(const struct control_view *v,
                          struct control_listeners *out);
void control_listeners_free(struct control_listeners *ls);

/* For each of the n listeners, into out[i]: the counters of its ended
 * sessions plus those of its live ones. */
void control_totals(const struct control_view *v,
                    const struct control_listener *ls, int n,
                    struct session_counters *out);

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

/* State kept between requests: the last sample of each session, from
 * which `list` computes faults per second. */
struct control_rates;
struct control_rates *control_rates_new(void);
void control_rates_free(struct control_rates *r);

/* The response to one request line, as a NUL-terminated JSON object
 * without a newline (malloc'd), or NULL when out of memory.  now_ns is
 * CLOCK_MONOTONIC, now_unix_ns CLOCK_REALTIME; rates may be NULL. */
char *control_respond(const struct control_view *v, struct control_rates *r,
                      const char *line, size_t len, uint64_t now_ns,
                      uint64_t now_unix_ns);

#endif

/* Prometheus text exposition (format 0.0.4) of the daemon's counters, and
 * the optional HTTP endpoint serving it (libmicrohttpd, driven from the
 * supervisor's epoll loop: no thread of its own). */
#ifndef UFFDKIT_CORE_METRICS_H
#define UFFDKIT_CORE_METRICS_H

#include <stddef.h>
#include <sys/socket.h>

#include "stats.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_DEFAULT_HOST "127.0.0.1"

/* Renders every metric of the view.  Returns a malloc'd NUL-terminated
 * string (its length in *len when len is not NULL), or NULL when out of
 * memory. */
char *metrics_render(const struct stats_view *v, size_t *len);

/* Parses a listen address: "PORT" (on 127.0.0.1), "HOST:PORT" with an IPv4
 * address or "localhost", or "[IPV6]:PORT".  Returns 0, or -1 with a
 * message in err. */
int metrics_parse_listen(const char *text, struct sockaddr_storage *ss,
                         socklen_t *sslen, char *err, size_t errlen);

struct metrics_http;

/* Starts serving GET /metrics on the address.  Returns NULL with a message
 * in err when it cannot (bad address, port in use, built without
 * libmicrohttpd). */
struct metrics_http *metrics_http_start(const char *listen,
                                        const struct stats_view *v, char *err,
                                        size_t errlen);
/* An epoll fd that is readable whenever the server has work. */
int metrics_http_fd(const struct metrics_http *h);
/* Serves what is ready, without blocking. */
void metrics_http_run(struct metrics_http *h);
/* The TCP port it listens on (useful after asking for port 0). */
int metrics_http_port(const struct metrics_http *h);
/* Milliseconds until metrics_http_run() must run again, or -1. */
int metrics_http_timeout(const struct metrics_http *h);
void metrics_http_stop(struct metrics_http *h);

#endif

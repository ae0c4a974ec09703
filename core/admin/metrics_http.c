/* The HTTP endpoint serving GET /metrics (libmicrohttpd, driven from the
 * supervisor's epoll loop), and the address it listens on. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#ifdef UFFDKIT_HAVE_MHD
#include <microhttpd.h>
#endif

/* ---- the listen address ---- */

int metrics_parse_listen(const char *text, struct sockaddr_storage *ss,
                         socklen_t *sslen, char *err, size_t errlen) {
  char host[128];
  const char *port;
  memset(ss, 0, sizeof *ss);
  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host) {
      snprintf(err, errlen,
               "metrics address '%s': expected [IPV6]:PORT, HOST:PORT or PORT",
               text);
      return -1;
    }
    memcpy(host, text + 1, (size_t)(end - text - 1));
    host[end - text - 1] = 0;
    port = end + 2;
  } else if (strchr(text, ':')) {
    const char *colon = strrchr(text, ':');
    if ((size_t)(colon - text) >= sizeof host || strchr(text, ':') != colon) {
      snprintf(err, errlen,
               "metrics address '%s': write an IPv6 address in brackets, "
               "[::1]:9464",
               text);
      return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    port = colon + 1;
  } else {
    snprintf(host, sizeof host, "%s", METRICS_DEFAULT_HOST);
    port = text;
  }
  char *end;
  errno = 0;
  unsigned long p = strtoul(port, &end, 10);
  if (!*port || *end || errno || p > 65535 || !isdigit((unsigned char)*port)) {
    snprintf(err, errlen, "metrics address '%s': port must be 0 to 65535",
             text);
    return -1;
  }
  if (!host[0]) {
    snprintf(err, errlen,
             "metrics address '%s': give a host: 127.0.0.1:%s, or "
             "0.0.0.0:%s for every interface",
             text, port, port);
    return -1;
  }
  if (!strcmp(host, "localhost"))
    snprintf(host, sizeof host, "%s", METRICS_DEFAULT_HOST);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)p);
    *sslen = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)p);
    *sslen = sizeof *a6;
  } else {
    snprintf(err, errlen,
             "metrics address '%s': '%s' is not an IP address or localhost",
             text, host);
    return -1;
  }
  return 0;
}

/* ---- the HTTP endpoint ---- */

#ifdef UFFDKIT_HAVE_MHD

struct metrics_http {
  struct MHD_Daemon *d;
  int epfd;
  int port;
  const struct stats_view *v;
};

static char start_error[256];
static int starting;

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n')
    msg[--n] = 0;
  if (starting)
    snprintf(start_error, sizeof start_error, "%.*s",
             (int)sizeof start_error - 1, msg);
  else
    log_debug("metrics http: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             char *body, size_t len, const char *type) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result q = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return q;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text) {
  char *body = strdup(text);
  if (!body) return MHD_NO;
  return reply(conn, status, body, strlen(body), "text/plain; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
  (void)version;
  (void)upload;
  (void)req_cls;
  struct metrics_http *h = cls;
  if (*upload_size) /* a body is never wanted: drop it */
    *upload_size = 0;
  if (strcmp(method, MHD_HTTP_METHOD_GET) &&
      strcmp(method, MHD_HTTP_METHOD_HEAD))
    return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "only GET and HEAD are served\n");
  if (!strcmp(url, "/"))
    return reply_text(conn, MHD_HTTP_OK, "uffdkit: metrics are at /metrics\n");
  if (strcmp(url, "/metrics"))
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
  size_t len;
  char *text = metrics_render(h->v, &len);
  if (!text)
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return reply(conn, MHD_HTTP_OK, text, len, METRICS_CONTENT_TYPE);
}

/* No address may hold more than a few connections, so clients dripping
 * bytes from one place (a slowloris) cannot keep a scraper from another
 * out; a connection that sends nothing for a while is closed. */
#define METRICS_CONNECTIONS 32
#define METRICS_PER_ADDRESS 4
#define METRICS_IDLE_SECONDS 5

struct metrics_http *metrics_http_start(const char *listen,
                                        const struct stats_view *v, char *err,
                                        size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (metrics_parse_listen(listen, &ss, &sslen, err, errlen) < 0) return NULL;
  struct metrics_http *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(err, errlen, "metrics: out of memory");
    return NULL;
  }
  h->v = v;
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  uint16_t port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  starting = 1;
  start_error[0] = 0;
  errno = 0;
  h->d = MHD_start_daemon(
      flags, port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)METRICS_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      (unsigned)METRICS_PER_ADDRESS, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)METRICS_IDLE_SECONDS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)32768, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)16,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  int e = errno;
  starting = 0;
  if (!h->d) {
    snprintf(err, errlen, "metrics: cannot listen on %s: %s", listen,
             start_error[0] ? start_error
             : e            ? strerror(e)
                            : "libmicrohttpd failed to start");
    free(h);
    return NULL;
  }
  const union MHD_DaemonInfo *fd =
      MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo *bp =
      MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  if (!fd) {
    snprintf(err, errlen, "metrics: libmicrohttpd gave no epoll fd");
    MHD_stop_daemon(h->d);
    free(h);
    return NULL;
  }
  h->epfd = fd->epoll_fd;
  h->port = bp ? bp->port : port;
  char host[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
              sizeof host);
  else
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
              sizeof host);
  log_info("metrics on http://%s%s%s:%u/metrics",
           ss.ss_family == AF_INET6 ? "[" : "", host,
           ss.ss_family == AF_INET6 ? "]" : "", h->port);
  return h;
}

int metrics_http_fd(const struct metrics_http *h) {
  return h->epfd;
}

int metrics_http_port(const struct metrics_http *h) {
  return h->port;
}

void metrics_http_run(struct metrics_http *h) {
  MHD_run(h->d);
}

int metrics_http_timeout(const struct metrics_http *h) {
  MHD_UNSIGNED_LONG_LONG t;
  if (MHD_get_timeout(h->d, &t) != MHD_YES) return -1;
  return t > INT_MAX ? INT_MAX : (int)t;
}

void metrics_http_stop(struct metrics_http *h) {
  if (!h) return;
  MHD_stop_daemon(h->d);
  free(h);
}

#else /* built without libmicrohttpd */

struct metrics_http {
  int unused;
};

struct metrics_http *metrics_http_start(const char *listen,
                                        const struct stats_view *v, char *err,
                                        size_t errlen) {
  (void)v;
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (metrics_parse_listen(listen, &ss, &sslen, err, errlen) == 0)
    snprintf(err, errlen,
             "metrics = \"%s\": this uffdkit was built without "
             "libmicrohttpd, so it has no HTTP endpoint (`uffdkit ctl "
             "metrics` still works)",
             listen);
  return NULL;
}

int metrics_http_fd(const struct metrics_http *h) {
  (void)h;
  return -1;
}

int metrics_http_port(const struct metrics_http *h) {
  (void)h;
  return -1;
}

void metrics_http_run(struct metrics_http *h) {
  (void)h;
}

int metrics_http_timeout(const struct metrics_http *h) {
  (void)h;
  return -1;
}

void metrics_http_stop(struct metrics_http *h) {
  (void)h;
}

#endif

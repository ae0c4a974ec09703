#include "control.h"

#include "control-priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "figures.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "sockfile.h"
#include "utf8.h"

/* ---- the server ---- */

static int open_socket(struct control *c, const char *path, char *err,
                       size_t errlen) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path,
             sizeof a.sun_path - 1);
    return -1;
  }
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  char dir[sizeof a.sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  const char *d = dirname(dir);
  if (mkdir(d, 0755) < 0 && errno != EEXIST) {
    snprintf(err, errlen, "control socket %s: cannot create %s: %s", path, d,
             strerror(errno));
    return -1;
  }
  char why[PATH_MAX + 128];
  if (sockfile_clear_stale(path, why, sizeof why) < 0) {
    snprintf(err, errlen, "control socket %s", why);
    return -1;
  }
  c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->lfd < 0) {
    snprintf(err, errlen, "control socket: %s", strerror(errno));
    return -1;
  }
  /* Created 0600, never briefly open to others; with allow lists, 0666:
   * the lists decide, at accept. */
  mode_t old = umask(c->n_allow_uids || c->n_allow_gids ? 0111 : 0177);
  int r = bind(c->lfd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  struct stat st;
  /* An orchestrator may open a connection per serve in flight, all at
   * once: a short backlog would refuse them (EAGAIN) before the loop
   * could accept, or answer busy. */
  if (r < 0 || listen(c->lfd, CONTROL_MAX_CLIENTS) < 0 || stat(path, &st) < 0) {
    snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
    if (r == 0) unlink(path);
    close(c->lfd);
    c->lfd = -1;
    return -1;
  }
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  c->path = strdup(path);
  if (!c->path) {
    snprintf(err, errlen, "control socket %s: out of memory", path);
    unlink(path);
    close(c->lfd);
    c->lfd = -1;
    return -1;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->tag_listen};
  epoll_ctl(c->ep, EPOLL_CTL_ADD, c->lfd, &e);
  log_info("control socket on %s", path);
  return 0;
}

int control_open(struct control **out, const struct daemon_conf *conf,
                 const struct control_view *view, char *err, size_t errlen) {
  *out = NULL;
  const char *path =
      conf->control_socket ? conf->control_socket : CONTROL_DEFAULT_SOCKET;
  if (!path[0] && !conf->metrics_listen) return 0;
  struct control *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "control: out of memory");
    return -1;
  }
  c->lfd = -1;
  c->intake.what = "control socket";
  c->n_allow_uids = conf->n_control_allow_uids;
  c->n_allow_gids = conf->n_control_allow_gids;
  c->allow_uids = calloc((size_t)c->n_allow_uids + 1, sizeof(uid_t));
  c->allow_gids = calloc((size_t)c->n_allow_gids + 1, sizeof(gid_t));
  c->v = view;
  c->rates = stats_rates_new();
  c->ep = epoll_create1(EPOLL_CLOEXEC);
  if (!c->allow_uids || !c->allow_gids || !c->rates) {
    snprintf(err, errlen, "control: out of memory");
    control_close(c);
    return -1;
  }
  for (int i = 0; i < c->n_allow_uids; i++)
    c->allow_uids[i] = conf->control_allow_uids[i];
  for (int i = 0; i < c->n_allow_gids; i++)
    c->allow_gids[i] = conf->control_allow_gids[i];
  if (c->ep < 0) {
    snprintf(err, errlen, "control: %s", strerror(errno));
    control_close(c);
    return -1;
  }
  if (path[0] && open_socket(c, path, err, errlen) < 0) {
    if (conf->control_socket) {
      control_close(c);
      return -1;
    }
    log_warn("%s; running without a control socket (set "
             "uffdkit.control_socket to choose another path)",
             err);
  }
  if (conf->metrics_listen) {
    c->http =
        metrics_http_start(conf->metrics_listen, &view->stats, err, errlen);
    if (!c->http) {
      control_close(c);
      return -1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->tag_http};
    epoll_ctl(c->ep, EPOLL_CTL_ADD, metrics_http_fd(c->http), &e);
  }
  if (c->lfd < 0 && !c->http) {
    control_close(c);
    return 0;
  }
  *out = c;
  return 0;
}

int control_fd(const struct control *c) {
  return c ? c->ep : -1;
}

static void drop(struct control *c, struct client *cl) {
  for (struct client **pp = &c->clients; *pp; pp = &(*pp)->next)
    if (*pp == cl) {
      *pp = cl->next;
      break;
    }
  epoll_ctl(c->ep, EPOLL_CTL_DEL, cl->fd, NULL);
  close(cl->fd);
  free(cl->in);
  free(cl->out);
  free(cl);
  c->nclients--;
}

void control_rearm(struct control *c, struct client *cl) {
  /* A held or watching client is not read: only its hang-up is seen. */
  uint32_t idle = cl->held || cl->watch ? 0 : EPOLLIN;
  struct epoll_event e = {.events = cl->writing ? EPOLLOUT : idle,
                          .data.ptr = cl};
  epoll_ctl(c->ep, EPOLL_CTL_MOD, cl->fd, &e);
}

static void want(struct control *c, struct client *cl, int writing) {
  if (cl->writing == writing) return;
  cl->writing = writing;
  control_rearm(c, cl);
}

/* Sends what it can; returns -1 when the client is gone. */
static int flush_out(struct client *cl) {
  while (cl->outoff < cl->outlen) {
    ssize_t n = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    cl->outoff += (size_t)n;
  }
  free(cl->out);
  cl->out = NULL;
  cl->outlen = cl->outoff = 0;
  return 0;
}

static void queue_reply(struct client *cl, char *json) {
  static const char oom[] = "{\"error\":\"out of memory\"}";
  size_t n = json ? strlen(json) : sizeof oom - 1;
  cl->out = malloc(n + 1);
  if (!cl->out) {
    free(json);
    cl->closing = 1;
    return;
  }
  memcpy(cl->out, json ? json : oom, n);
  cl->out[n] = '\n';
  cl->outlen = n + 1;
  cl->outoff = 0;
  free(json);
}

static void reply_error(struct client *cl, const char *msg) {
  queue_reply(cl, control_error_reply(msg));
}

/* Answers the complete lines buffered, one at a time, until a reply does
 * not fit in the socket.  Returns -1 when the client is to be dropped. */
static int serve_client(struct control *c, struct client *cl, int eof) {
  for (;;) {
    if (flush_out(cl) < 0) return -1;
    if (cl->out) {
      want(c, cl, 1);
      return 0;
    }
    want(c, cl, 0);
    if (cl->closing) return -1;
    if (cl->held || cl->watch) return 0;
    char *nl = cl->inlen ? memchr(cl->in, '\n', cl->inlen) : NULL;
    size_t len = nl ? (size_t)(nl - cl->in) : cl->inlen;
    if (!nl && !(eof && cl->inlen)) {
      if (eof) return -1;
      if (cl->inlen > CONTROL_MAX_REQUEST) {
        char msg[64];
        snprintf(msg, sizeof msg, "request longer than %d bytes",
                 CONTROL_MAX_REQUEST);
        reply_error(cl, msg);
        cl->closing = 1;
        continue;
      }
      return 0;
    }
    if (len && cl->in[len - 1] == '\r') len--;
    if (!admin_request(c, cl, cl->in, len)) {
      char *r = control_respond(c->v, c->rates, cl->in, len, clock_mono_ns(),
                                clock_unix_ns());
      queue_reply(cl, r);
    }
    size_t used = nl ? (size_t)(nl - cl->in) + 1 : cl->inlen;
    memmove(cl->in, cl->in + used, cl->inlen - used);
    cl->inlen -= used;
    cl->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
  }
}

void control_kick(struct control *c, struct client *cl) {
  if (serve_client(c, cl, 0) < 0) drop(c, cl);
}

static void on_client(struct control *c, struct client *cl) {
  int eof = 0;
  while (!cl->writing && !cl->closing) {
    if (cl->incap - cl->inlen < 4096) {
      size_t cap = cl->incap ? cl->incap * 2 : 4096;
      if (cap > CONTROL_MAX_REQUEST + 4096) cap = CONTROL_MAX_REQUEST + 4096;
      if (cap == cl->incap)
        break; /* full: serve_client answers the oversize request */
      char *p = realloc(cl->in, cap);
      if (!p) {
        drop(c, cl);
        return;
      }
      cl->in = p;
      cl->incap = cap;
    }
    ssize_t n =
        recv(cl->fd, cl->in + cl->inlen, cl->incap - cl->inlen, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      eof = 1;
      break;
    }
    cl->inlen += (size_t)n;
    if (memchr(cl->in + cl->inlen - n, '\n', (size_t)n) ||
        cl->inlen > CONTROL_MAX_REQUEST)
      break; /* answer before reading more */
  }
  if (serve_client(c, cl, eof) < 0) drop(c, cl);
}

static void set_listening(struct control *c, int on) {
  struct epoll_event e = {.events = on ? EPOLLIN : 0,
                          .data.ptr = &c->tag_listen};
  epoll_ctl(c->ep, EPOLL_CTL_MOD, c->lfd, &e);
}

static int peer_may_control(const struct control *c, const struct ucred *cr) {
  if (cr->uid == 0 || cr->uid == geteuid()) return 1;
  for (int i = 0; i < c->n_allow_uids; i++)
    if (c->allow_uids[i] == cr->uid) return 1;
  for (int i = 0; i < c->n_allow_gids; i++)
    if (c->allow_gids[i] == cr->gid) return 1;
  return 0;
}

static void on_accept(struct control *c) {
  for (;;) {
    int fd = intake_accept(&c->intake, c->lfd);
    if (fd < 0) {
      if (errno != EAGAIN) set_listening(c, 0); /* out of descriptors */
      return;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    const char *why = NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        !peer_may_control(c, &cr))
      why = "{\"error\":\"permission denied: only root, the daemon's user "
            "and those in control_allow_uids/control_allow_gids may use the "
            "control socket\",\"code\":\"denied\"}\n";
    else if (c->nclients >= CONTROL_MAX_CLIENTS)
      why = "{\"error\":\"too many control connections; try again\","
            "\"code\":\"busy\"}\n";
    if (why) {
      if (send(fd, why, strlen(why), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("control socket: %s", strerror(errno));
      close(fd);
      continue;
    }
    struct client *n = calloc(1, sizeof *n);
    if (!n) {
      close(fd);
      continue;
    }
    n->fd = fd;
    n->id = ++c->next_client;
    n->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = n};
    if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
      close(fd);
      free(n);
      continue;
    }
    n->next = c->clients;
    c->clients = n;
    c->nclients++;
  }
}

static void on_event(struct control *c, struct client *cl, uint32_t events) {
  if ((cl->held || cl->watch) && !cl->writing) {
    if (events & (EPOLLHUP | EPOLLERR)) drop(c, cl); /* the client left */
    return;
  }
  if ((cl->held || cl->watch) && (events & EPOLLOUT)) {
    control_kick(c, cl);
    return;
  }
  on_client(c, cl);
}

/* Whether a whole request of cl came and waits to be read: at most 16
 * events are taken a turn, so under a burst of clients one may wait past
 * its deadline through no fault of its own; it is answered, not dropped. */
static int request_waiting(const struct client *cl) {
  char buf[4096];
  if (cl->writing || cl->watch || cl->closing) return 0;
  ssize_t n = recv(cl->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 && memchr(buf, '\n', (size_t)n) != NULL;
}

void control_run(struct control *c) {
  if (!c) return;
  if (c->lfd >= 0 && intake_resume_due(&c->intake)) set_listening(c, 1);
  struct epoll_event ev[16];
  int n = epoll_wait(c->ep, ev, 16, 0);
  int http = 0;
  for (int i = 0; i < n; i++) {
    if (ev[i].data.ptr == &c->tag_listen)
      on_accept(c);
    else if (ev[i].data.ptr == &c->tag_http)
      http = 1;
    else
      on_event(c, ev[i].data.ptr, ev[i].events);
  }
  /* libmicrohttpd wants a run after every wake-up while it has a timeout
   * (that is, open connections), not only when its fd is ready. */
  if (c->http && (http || metrics_http_timeout(c->http) >= 0))
    metrics_http_run(c->http);
  uint64_t t = clock_mono_ns();
  for (struct client *cl = c->clients, *next; cl; cl = next) {
    next = cl->next;
    if (t < cl->deadline || cl->held || (cl->watch && !cl->out)) continue;
    if (request_waiting(cl))
      cl->deadline = t + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
    else
      drop(c, cl);
  }
}

int control_timeout(const struct control *c, int timeout_ms) {
  if (!c) return timeout_ms;
  int t = intake_timeout(&c->intake, timeout_ms);
  if (c->clients) {
    uint64_t now = clock_mono_ns(), first = UINT64_MAX;
    for (const struct client *cl = c->clients; cl; cl = cl->next)
      if (cl->deadline < first && !cl->held && (!cl->watch || cl->out))
        first = cl->deadline;
    int ms = first <= now ? 0 : (int)((first - now) / 1000000 + 1);
    if (first != UINT64_MAX && (t < 0 || ms < t)) t = ms;
  }
  if (c->http) {
    int ms = metrics_http_timeout(c->http);
    if (ms >= 0 && (t < 0 || ms < t)) t = ms;
  }
  return t;
}

void control_close(struct control *c) {
  if (!c) return;
  while (c->clients)
    drop(c, c->clients);
  metrics_http_stop(c->http);
  if (c->lfd >= 0) {
    close(c->lfd);
    struct stat st;
    if (c->path && stat(c->path, &st) == 0 && st.st_dev == c->dev &&
        st.st_ino == c->ino)
      unlink(c->path);
  }
  free(c->path);
  if (c->ep >= 0) close(c->ep);
  stats_rates_free(c->rates);
  free(c->allow_uids);
  free(c->allow_gids);
  free(c);
}

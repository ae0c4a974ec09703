#include "ctlserve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"

#define LINE_MAX_BYTES (16u << 20)

/* A connection read line by line, keeping what follows a line. */
struct conn {
  int fd;
  const char *path;
  char *buf;
  size_t len, cap;
};

static uint64_t mono_ms(void) {
  return clock_mono_ns() / 1000000;
}

static void say(const char *fmt, const char *a) {
  fputs("uffdkit ctl: ", stderr);
  fprintf(stderr, fmt, a);
  fputc('\n', stderr);
}

/* The next line (malloc'd, without its newline); NULL at end of stream
 * (*eof set) or after timeout_ms (-1: none). */
static char *next_line(struct conn *c, int timeout_ms, int *eof) {
  uint64_t end = mono_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
  *eof = 0;
  for (;;) {
    char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      char *line = strndup(c->buf, n);
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return line;
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      uint64_t now = mono_ms();
      if (now >= end) return NULL;
      wait = (int)(end - now);
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return NULL;
    if (c->cap - c->len < 4096) {
      size_t cap = c->cap ? c->cap * 2 : 65536;
      char *b = cap <= LINE_MAX_BYTES ? realloc(c->buf, cap) : NULL;
      if (!b) return NULL;
      c->buf = b;
      c->cap = cap;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *eof = 1;
      return NULL;
    }
    c->len += (size_t)n;
  }
}

/* Sends req (taken) on a new connection; 0 or -1 (said). */
static int open_send(struct conn *c, const char *path, cJSON *req) {
  char *line = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  memset(c, 0, sizeof *c);
  c->path = path;
  c->fd = line ? ctl_connect(path) : -1;
  if (c->fd < 0) {
    free(line);
    return -1;
  }
  size_t n = strlen(line);
  line[n] = '\n';
  /* A daemon refusing the peer answers and closes before reading: its
   * answer is read even when the request could not be sent. */
  if (ctl_send_all(c->fd, line, n + 1) < 0 && errno != EPIPE &&
      errno != ECONNRESET)
    say("sending to %s failed", path);
  free(line);
  return 0;
}

static void conn_close(struct conn *c) {
  if (c->fd >= 0) close(c->fd);
  free(c->buf);
}

/* The answer on c as an object; NULL (said) when none came. */
static cJSON *answer(struct conn *c, int timeout_ms) {
  int eof;
  char *line = next_line(c, timeout_ms, &eof);
  if (!line) {
    say(eof ? "the daemon on %s closed the connection"
            : "no answer from the daemon on %s in time",
        c->path);
    return NULL;
  }
  cJSON *r = cJSON_Parse(line);
  if (!cJSON_IsObject(r)) {
    say("the daemon's answer is not a JSON object: %.200s", line);
    cJSON_Delete(r);
    r = NULL;
  }
  free(line);
  return r;
}

/* Prints an error answer (as is with json); the exit status of a. */
static int verdict(const cJSON *a, int json) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(a, "error");
  if (json) {
    char *s = cJSON_PrintUnformatted(a);
    if (s) puts(s);
    free(s);
  } else if (e) {
    say("%s", cJSON_IsString(e) ? e->valuestring : "error");
  }
  return e ? CTL_REFUSED : CTL_OK;
}

static cJSON *request(const char *cmd) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddItemToObject(r, "v", cJSON_CreateNumber(1));
  cJSON_AddItemToObject(r, "cmd", cJSON_CreateString(cmd));
  return r;
}

/* ---- serve ---- */

static int number(const char *s, double max, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return !*s || *end || errno || !(*out >= 0) || *out > max ? -1 : 0;
}

/* The serve request of the command line; NULL (said) on a usage error. */
static cJSON *serve_request(char **args, int n, const struct ctl_serve_opts *o,
                            const char *id) {
  cJSON *r = request("serve");
  cJSON_AddItemToObject(r, "template", cJSON_CreateString(args[0]));
  cJSON *vars = cJSON_AddObjectToObject(r, "vars");
  for (int i = 1; i < n; i++) {
    char *eq = strchr(args[i], '=');
    if (!eq || eq == args[i]) {
      say("'%s' is not VAR=VALUE", args[i]);
      cJSON_Delete(r);
      return NULL;
    }
    char *name = strndup(args[i], (size_t)(eq - args[i]));
    cJSON_AddItemToObject(vars, name, cJSON_CreateString(eq + 1));
    free(name);
  }
  if (id) cJSON_AddItemToObject(r, "id", cJSON_CreateString(id));
  double x;
  if (o->expiry && number(o->expiry, 86400, &x) < 0) {
    say("--expiry needs seconds from 0 to 86400, not '%s'", o->expiry);
    cJSON_Delete(r);
    return NULL;
  }
  if (o->expiry)
    cJSON_AddItemToObject(r, "expiry_ms", cJSON_CreateNumber(round(x * 1000)));
  if (o->no_one_shot) cJSON_AddItemToObject(r, "one_shot", cJSON_CreateFalse());
  if (o->uid && number(o->uid, 4294967294.0, &x) < 0) {
    say("--uid needs a numeric uid, not '%s'", o->uid);
    cJSON_Delete(r);
    return NULL;
  }
  if (o->uid) cJSON_AddItemToObject(r, "uid", cJSON_CreateNumber(x));
  return r;
}

/* Events on w until the ready of a session; the exit status. */
static int wait_ready(struct conn *w, int json, int timeout_ms) {
  for (;;) {
    int eof;
    char *line = next_line(w, timeout_ms, &eof);
    if (!line) {
      say(eof ? "the daemon on %s closed the watch before a VM was ready"
              : "no VM was ready in time (%s)",
          w->path);
      return CTL_NO_DAEMON;
    }
    cJSON *e = cJSON_Parse(line);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "event");
    const char *kind = cJSON_IsString(k) ? k->valuestring : "";
    int rc = -1;
    if (!strcmp(kind, "ready")) rc = CTL_OK;
    if (!strcmp(kind, "removed")) {
      say("the restore was removed before a VM was ready (%s)", w->path);
      rc = CTL_REFUSED;
    }
    if (json && (rc >= 0 || !strcmp(kind, "failed"))) puts(line);
    cJSON_Delete(e);
    free(line);
    if (rc >= 0) return rc;
  }
}

static int serve(const char *path, char **args, int n,
                 const struct ctl_serve_opts *o, int json, int timeout_ms) {
  if (n < 1) {
    say("serve needs a template: uffdkit ctl serve TEMPLATE VAR=VALUE...%s",
        "");
    return CTL_USAGE;
  }
  char made[64];
  const char *id = o->id;
  if (o->wait_ready && !id) { /* the watch must name it before it exists */
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint64_t)mono_ms();
    snprintf(made, sizeof made, "%.46s-%016llx", args[0],
             (unsigned long long)r);
    id = made;
  }
  cJSON *req = serve_request(args, n, o, id);
  if (!req) return CTL_USAGE;
  struct conn w = {.fd = -1}, c = {.fd = -1};
  int rc = CTL_NO_DAEMON;
  cJSON *a = NULL;
  if (o->wait_ready) {
    cJSON *wr = request("watch");
    cJSON_AddItemToObject(wr, "id", cJSON_CreateString(id));
    cJSON *ok = open_send(&w, path, wr) == 0 ? answer(&w, timeout_ms) : NULL;
    int watching = ok && !cJSON_GetObjectItemCaseSensitive(ok, "error");
    if (ok && !watching) rc = verdict(ok, json);
    cJSON_Delete(ok);
    if (!watching) {
      cJSON_Delete(req);
      goto out;
    }
  }
  if (open_send(&c, path, req) < 0 || !(a = answer(&c, timeout_ms))) goto out;
  if (json || cJSON_GetObjectItemCaseSensitive(a, "error")) {
    rc = verdict(a, json);
  } else {
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(a, "id");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "socket");
    printf("%s %s\n", cJSON_IsString(i) ? i->valuestring : "?",
           cJSON_IsString(s) ? s->valuestring : "?");
    rc = CTL_OK;
  }
  fflush(stdout);
  if (rc == CTL_OK && o->wait_ready) rc = wait_ready(&w, json, timeout_ms);
out:
  cJSON_Delete(a);
  conn_close(&c);
  conn_close(&w);
  return rc;
}

/* ---- stop, watch ---- */

static int stop(const char *path, char **args, int n,
                const struct ctl_serve_opts *o, int json, int timeout_ms) {
  if (n != 1) {
    say("stop needs one id: uffdkit ctl stop ID%s", "");
    return CTL_USAGE;
  }
  cJSON *r = request("stop");
  cJSON_AddItemToObject(r, "id", cJSON_CreateString(args[0]));
  if (o->keep_sessions)
    cJSON_AddItemToObject(r, "keep_sessions", cJSON_CreateTrue());
  struct conn c;
  cJSON *a = open_send(&c, path, r) == 0 ? answer(&c, timeout_ms) : NULL;
  int rc = CTL_NO_DAEMON;
  if (a && (json || cJSON_GetObjectItemCaseSensitive(a, "error"))) {
    rc = verdict(a, json);
  } else if (a) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "sessions");
    int live = cJSON_IsNumber(s) ? s->valueint : 0;
    printf("stopped %s: %d live session%s %s\n", args[0], live,
           live == 1 ? "" : "s",
           o->keep_sessions ? "kept until their VMs exit" : "ended");
    rc = CTL_OK;
  }
  cJSON_Delete(a);
  conn_close(&c);
  return rc;
}

/* One event as "EVENT ID key=value...", scalars only. */
static void print_event(const char *line) {
  cJSON *e = cJSON_Parse(line);
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "event");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
  if (!cJSON_IsString(k) || !cJSON_IsString(id)) {
    puts(line);
    cJSON_Delete(e);
    return;
  }
  printf("%s %s", k->valuestring, id->valuestring);
  const cJSON *f;
  cJSON_ArrayForEach(f, e) {
    if (!strcmp(f->string, "event") || !strcmp(f->string, "id") ||
        !strcmp(f->string, "time_unix_ns"))
      continue;
    if (cJSON_IsString(f))
      printf(" %s=%s", f->string, f->valuestring);
    else if (cJSON_IsNumber(f))
      printf(" %s=%.0f", f->string, f->valuedouble);
    else if (cJSON_IsBool(f))
      printf(" %s=%s", f->string, cJSON_IsTrue(f) ? "true" : "false");
  }
  putchar('\n');
  cJSON_Delete(e);
}

static int watch(const char *path, char **args, int n, int json,
                 int timeout_ms) {
  if (n > 1) {
    say("watch takes at most one id%s", "");
    return CTL_USAGE;
  }
  cJSON *r = request("watch");
  if (n) cJSON_AddItemToObject(r, "id", cJSON_CreateString(args[0]));
  struct conn c;
  cJSON *a = open_send(&c, path, r) == 0 ? answer(&c, timeout_ms) : NULL;
  /* With --json the answer is printed first, as is: a script sees from
   * it that the watch has begun. */
  int rc = a ? (cJSON_GetObjectItemCaseSensitive(a, "error") || json
                    ? verdict(a, json)
                    : CTL_OK)
             : CTL_NO_DAEMON;
  fflush(stdout);
  cJSON_Delete(a);
  while (rc == CTL_OK) {
    int eof;
    char *line = next_line(&c, -1, &eof);
    if (!line) break; /* the daemon stopped */
    if (json)
      puts(line);
    else
      print_event(line);
    fflush(stdout);
    free(line);
  }
  conn_close(&c);
  return rc;
}

int ctl_serve_cmd(const char *cmd) {
  return !strcmp(cmd, "serve") || !strcmp(cmd, "stop") || !strcmp(cmd, "watch");
}

int ctl_serve_run(const char *path, const char *cmd, char **args, int n,
                  const struct ctl_serve_opts *o, int json, int timeout_ms) {
  if (!strcmp(cmd, "serve")) return serve(path, args, n, o, json, timeout_ms);
  if (!strcmp(cmd, "stop")) return stop(path, args, n, o, json, timeout_ms);
  return watch(path, args, n, json, timeout_ms);
}

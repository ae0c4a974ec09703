/* The requests of the control protocol that concern per-restore
 * listeners (serve, stop, watch) and version: their answers may come
 * later (serve) or never end (watch).  See docs/control-protocol.md. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control-priv.h"
#include "figures.h"
#include "utf8.h"

#ifndef UFFDKIT_VERSION
#define UFFDKIT_VERSION "0"
#endif

#define PROTOCOL_VERSION 1

/* Queues json (taken) and a newline behind what cl has to send. */
static int append(struct client *cl, cJSON *json) {
  char *s = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  if (!s) return -1;
  size_t n = strlen(s);
  char *out = realloc(cl->out, cl->outlen + n + 1);
  if (!out) {
    free(s);
    return -1;
  }
  if (!cl->out) cl->outlen = cl->outoff = 0;
  memcpy(out + cl->outlen, s, n);
  out[cl->outlen + n] = '\n';
  cl->out = out;
  cl->outlen += n + 1;
  free(s);
  return 0;
}

static int reply(struct client *cl, cJSON *o) {
  if (append(cl, o) < 0) cl->closing = 1;
  return 1;
}

static int bad(struct client *cl, const char *fmt, const char *arg,
               const char *code) {
  char msg[512], q[300];
  utf8_quote(q, sizeof q, arg ? arg : "", 64);
  snprintf(msg, sizeof msg, fmt, q);
  return reply(cl, control_error(msg, code));
}

/* Every key of j is one of keys; else an error is queued (returns 0). */
static int keys_ok(struct client *cl, const cJSON *j, const char *cmd,
                   const char *const *keys) {
  const cJSON *item;
  cJSON_ArrayForEach(item, j) {
    int known = 0;
    for (const char *const *k = keys; *k && !known; k++)
      known = !strcmp(*k, item->string);
    if (!known) {
      char fmt[128];
      snprintf(fmt, sizeof fmt, "unknown key \"%%s\" in a %s request", cmd);
      bad(cl, fmt, item->string, "bad_request");
      return 0;
    }
  }
  return 1;
}

/* The optional string id of j: NULL when absent, "" (error queued) when
 * not a string. */
static const char *opt_id(struct client *cl, const cJSON *j, int *ok) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  *ok = 1;
  if (!id) return NULL;
  if (!cJSON_IsString(id) || strlen(id->valuestring) > 63) {
    bad(cl, "\"id\" must be a string of at most 63 bytes%s", "", "bad_request");
    *ok = 0;
    return NULL;
  }
  return id->valuestring;
}

static int do_serve(struct control *c, struct client *cl, const cJSON *j) {
  static const char *const keys[] = {"cmd",      "v",   "template",
                                     "vars",     "id",  "expiry_ms",
                                     "one_shot", "uid", NULL};
  if (!keys_ok(cl, j, "serve", keys)) return 1;
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "template");
  const cJSON *vars = cJSON_GetObjectItemCaseSensitive(j, "vars");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expiry_ms");
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "one_shot");
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "uid");
  int ok;
  opt_id(cl, j, &ok);
  if (!ok) return 1;
  if (!cJSON_IsString(t))
    return bad(cl, "serve needs \"template\": a template's name%s", "",
               "bad_request");
  if (!cJSON_IsObject(vars))
    return bad(cl,
               "serve needs \"vars\": an object of strings, such as "
               "{\"build_id\":\"b1\"}%s",
               "", "bad_request");
  const cJSON *item;
  cJSON_ArrayForEach(item, vars) if (!cJSON_IsString(item)) return bad(
      cl, "variable \"%s\" must be a string", item->string, "bad_variable");
  if (e &&
      (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 86400000 ||
       e->valuedouble != (double)(long long)e->valuedouble))
    return bad(cl, "\"expiry_ms\" must be an integer from 0 to 86400000%s", "",
               "bad_request");
  if (o && !cJSON_IsBool(o))
    return bad(cl, "\"one_shot\" must be true or false%s", "", "bad_request");
  if (u && (!cJSON_IsNumber(u) || u->valuedouble < 0 ||
            u->valuedouble >= 4294967295.0 ||
            u->valuedouble != (double)(long long)u->valuedouble))
    return bad(cl, "\"uid\" must be an integer uid%s", "", "bad_request");
  if (!c->v->serve)
    return bad(cl, "serve is not supported by this daemon%s", "", "failed");
  char err[2048] = "";
  const char *code = "failed";
  if (c->v->serve(c->v->opaque, cl->id, j, err, sizeof err, &code) < 0)
    return reply(cl, control_error(err, code));
  cl->held = 1; /* control_reply() answers */
  control_rearm(c, cl);
  return 1;
}

static int do_stop(struct control *c, struct client *cl, const cJSON *j) {
  static const char *const keys[] = {"cmd", "v", "id", "keep_sessions", NULL};
  if (!keys_ok(cl, j, "stop", keys)) return 1;
  int ok;
  const char *id = opt_id(cl, j, &ok);
  if (!ok) return 1;
  if (!id || !id[0])
    return bad(cl, "stop needs \"id\": the id serve answered%s", "",
               "bad_request");
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "keep_sessions");
  if (k && !cJSON_IsBool(k))
    return bad(cl, "\"keep_sessions\" must be true or false%s", "",
               "bad_request");
  if (!c->v->stop)
    return bad(cl, "stop is not supported by this daemon%s", "", "failed");
  char err[1024] = "";
  const char *code = "failed";
  cJSON *a = c->v->stop(c->v->opaque, j, err, sizeof err, &code);
  return reply(cl, a ? a : control_error(err, code));
}

static int do_watch(struct control *c, struct client *cl, const cJSON *j) {
  static const char *const keys[] = {"cmd", "v", "id", NULL};
  if (!keys_ok(cl, j, "watch", keys)) return 1;
  int ok;
  const char *id = opt_id(cl, j, &ok);
  if (!ok) return 1;
  snprintf(cl->watch_id, sizeof cl->watch_id, "%s", id ? id : "");
  cJSON *a = cJSON_CreateObject();
  json_put(a, "ok", cJSON_CreateTrue());
  reply(cl, a);
  cl->watch = 1;
  control_rearm(c, cl);
  return 1;
}

int admin_request(struct control *c, struct client *cl, const char *line,
                  size_t len) {
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return 0; /* control_respond() says what is wrong */
  }
  int done = 1;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "v");
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(j, "cmd");
  const char *name = cJSON_IsString(cmd) ? cmd->valuestring : "";
  if (v && (!cJSON_IsNumber(v) || v->valuedouble != PROTOCOL_VERSION)) {
    bad(cl, "protocol version %s is not supported: \"v\" must be 1",
        cJSON_IsString(v) ? v->valuestring : "", "unsupported_version");
  } else if (!strcmp(name, "serve")) {
    do_serve(c, cl, j);
  } else if (!strcmp(name, "stop")) {
    do_stop(c, cl, j);
  } else if (!strcmp(name, "watch")) {
    do_watch(c, cl, j);
  } else if (!strcmp(name, "version")) {
    cJSON *a = cJSON_CreateObject();
    json_put(a, "protocol", cJSON_CreateNumber(PROTOCOL_VERSION));
    json_put(a, "daemon", cJSON_CreateString(UFFDKIT_VERSION));
    reply(cl, a);
  } else {
    done = 0;
  }
  cJSON_Delete(j);
  return done;
}

void control_reply(struct control *c, uint64_t client, cJSON *answer) {
  struct client *cl = c ? c->clients : NULL;
  while (cl && cl->id != client)
    cl = cl->next;
  if (!cl) {
    cJSON_Delete(answer);
    return;
  }
  reply(cl, answer);
  cl->held = 0;
  cl->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
  control_rearm(c, cl);
  control_kick(c, cl);
}

void control_event(struct control *c, const char *id, cJSON *event) {
  if (!c) {
    cJSON_Delete(event);
    return;
  }
  for (struct client *cl = c->clients, *next; cl; cl = next) {
    next = cl->next;
    if (!cl->watch || (cl->watch_id[0] && strcmp(cl->watch_id, id))) continue;
    if (cl->out && cl->outlen - cl->outoff > CONTROL_WATCH_MAX_QUEUED) {
      cl->closing = 1; /* it has missed events: it lists again */
      free(cl->out);
      cl->out = NULL;
      cl->outlen = cl->outoff = 0;
    } else {
      if (!cl->out)
        cl->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
      append(cl, cJSON_Duplicate(event, 1));
    }
    control_kick(c, cl);
  }
  cJSON_Delete(event);
}

/* The http source's settings. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "redirect.h"

static int opt_string(const struct ufk_config *cfg, const char *key,
                      char **out) {
  const char *v;
  int r = host->get_string(cfg, key, &v);
  *out = NULL;
  if (r < 0) return -1;
  if (r == 0 && *v) {
    *out = strdup(v);
    if (!*out) return fail(ENOMEM, "%s: out of memory", key);
  }
  return 0;
}

static int check_url(const struct ufk_config *cfg, struct http *h) {
  const char *where = host->where(cfg, "url");
  if (opt_string(cfg, "url", &h->url) < 0) return -1;
  if (!h->url) return fail(EINVAL, "url (%s): required", where);
  CURLU *u = curl_url();
  char *scheme = NULL;
  int bad = !u || curl_url_set(u, CURLUPART_URL, h->url, 0) ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
            (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"));
  char *user = NULL;
  h->credentials |= !bad && !curl_url_get(u, CURLUPART_USER, &user, 0);
  curl_free(user);
  curl_free(scheme);
  curl_url_cleanup(u);
  h->shown_url = bad ? NULL : redact_url(h->url);
  if (bad || !h->shown_url)
    return fail(EINVAL, "url (%s): not a valid http:// or https:// URL", where);
  return 0;
}

static int read_headers(const struct ufk_config *cfg, struct http *h) {
  int n = host->get_list_count(cfg, "headers");
  for (int i = 0; i < n; i++) {
    const char *v;
    if (host->get_list_item(cfg, "headers", i, &v))
      return fail(EINVAL, "headers (%s): item %d unreadable",
                  host->where(cfg, "headers"), i);
    /* CR/LF would let one setting inject whole requests. */
    if (!strchr(v, ':') || strpbrk(v, "\r\n") || v[0] == ':')
      return fail(EINVAL, "headers (%s): item %d is not 'Name: value'",
                  host->where(cfg, "headers"), i);
    struct curl_slist *l = curl_slist_append(h->headers, v);
    if (!l) return fail(ENOMEM, "headers: out of memory");
    h->headers = l;
  }
  h->credentials |= n > 0; /* every one is a secret setting */
  return n < 0 ? -1 : 0;
}

static int duration_ms(const struct ufk_config *cfg, const char *key,
                       long *out) {
  uint64_t ns;
  if (host->get_duration_ns(cfg, key, &ns))
    return fail(EINVAL, "%s: missing or invalid", key);
  if (ns < 1000000 || ns > 86400ull * 1000000000ull)
    return fail(EINVAL, "%s (%s): must be between 1ms and 24h", key,
                host->where(cfg, key));
  *out = (long)(ns / 1000000);
  return 0;
}

/* Credentials default to the standard AWS_* variables, as the AWS tools do. */
static int env_default(char **v, const char *env) {
  const char *e = getenv(env);
  if (!*v && e && *e && !(*v = strdup(e)))
    return fail(ENOMEM, "%s: out of memory", env);
  return 0;
}

static int add_session_token(struct http *h, const char *token) {
  size_t n = strlen(token) + 32;
  char *line = malloc(n);
  if (!line) return fail(ENOMEM, "aws_session_token: out of memory");
  snprintf(line, n, "x-amz-security-token: %s", token);
  struct curl_slist *l = curl_slist_append(h->headers, line);
  free(line);
  if (!l) return fail(ENOMEM, "aws_session_token: out of memory");
  h->headers = l;
  return 0;
}

/* S3 refuses SigV4 requests without x-amz-content-sha256, and libcurl
 * before 8.x does not add it; a supplied one is signed with the rest.  The
 * header's infix is the second provider ("aws:amz" -> x-amz-...), and a GET
 * has an empty payload, whose SHA-256 this is. */
static int add_payload_hash(struct http *h) {
  char infix[32] = "", line[160], *colon = strchr(h->sigv4, ':');
  const char *p = colon && colon[1] && colon[1] != ':' ? colon + 1 : h->sigv4;
  size_t n = strcspn(p, ":");
  if (n == 0 || n >= sizeof infix)
    return fail(EINVAL, "aws_sigv4: '%s' has no usable provider", h->sigv4);
  for (size_t i = 0; i < n; i++)
    infix[i] = (char)tolower((unsigned char)p[i]);
  snprintf(line, sizeof line, "x-%s-content-sha256:", infix);
  for (struct curl_slist *l = h->headers; l; l = l->next)
    if (!strncasecmp(l->data, line, strlen(line))) return 0;
  snprintf(line, sizeof line,
           "x-%s-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b"
           "934ca495991b7852b855",
           infix);
  struct curl_slist *l = curl_slist_append(h->headers, line);
  if (!l) return fail(ENOMEM, "aws_sigv4: out of memory");
  h->headers = l;
  return 0;
}

static int read_aws(const struct ufk_config *cfg, struct http *h) {
  char *token = NULL;
  if (opt_string(cfg, "aws_sigv4", &h->sigv4) < 0 ||
      opt_string(cfg, "aws_access_key_id", &h->key_id) < 0 ||
      opt_string(cfg, "aws_secret_access_key", &h->secret) < 0 ||
      opt_string(cfg, "aws_session_token", &token) < 0)
    return -1;
  if (!h->sigv4) {
    free(token);
    if (h->key_id || h->secret)
      return fail(EINVAL, "aws credentials are set but aws_sigv4 is not");
    return 0;
  }
  h->credentials = 1;
  int r = env_default(&h->key_id, "AWS_ACCESS_KEY_ID");
  if (!r) r = env_default(&h->secret, "AWS_SECRET_ACCESS_KEY");
  if (!r) r = env_default(&token, "AWS_SESSION_TOKEN");
  if (!r && (!h->key_id || !h->secret))
    r = fail(EINVAL,
             "aws_sigv4 (%s): needs aws_access_key_id and "
             "aws_secret_access_key (or AWS_ACCESS_KEY_ID and "
             "AWS_SECRET_ACCESS_KEY in the environment)",
             host->where(cfg, "aws_sigv4"));
  if (!r && token) r = add_session_token(h, token);
  if (!r) r = add_payload_hash(h);
  free(token);
  return r;
}

static int read_yield(const struct ufk_config *cfg, struct http *h) {
  if (host->get_duration_ns(cfg, "prefetch_pause", &h->pause_ns))
    return fail(EINVAL, "prefetch_pause: missing or invalid");
  if (h->pause_ns > 10000000000ull)
    return fail(EINVAL, "prefetch_pause (%s): must be at most 10s",
                host->where(cfg, "prefetch_pause"));
  if (host->get_size(cfg, "prefetch_window", &h->prefetch_window))
    return fail(EINVAL, "prefetch_window: missing or invalid");
  if (h->prefetch_window &&
      (h->prefetch_window < 4096 || h->prefetch_window > (1u << 30)))
    return fail(EINVAL, "prefetch_window (%s): must be 0 or 4K to 1G",
                host->where(cfg, "prefetch_window"));
  /* So replay still moves while a guest faults without a break (a release
   * per hold_max, yield.c), well within a request's timeout. */
  h->hold_max_ns = HOLD_PAUSES * h->pause_ns;
  if (h->hold_max_ns > (uint64_t)h->timeout_ms * 500000u)
    h->hold_max_ns = (uint64_t)h->timeout_ms * 500000u;
  return 0;
}

int http_read_settings(const struct ufk_config *cfg, struct http *h) {
  int64_t conns, redirects;
  if (check_url(cfg, h) < 0 || read_headers(cfg, h) < 0 ||
      opt_string(cfg, "ca_file", &h->ca_file) < 0 ||
      host->get_bool(cfg, "verify_tls", &h->verify_tls) ||
      duration_ms(cfg, "connect_timeout", &h->connect_timeout_ms) < 0 ||
      duration_ms(cfg, "timeout", &h->timeout_ms) < 0 ||
      host->get_int(cfg, "connections", &conns) ||
      host->get_int(cfg, "redirects", &redirects) || read_aws(cfg, h) < 0)
    return -1;
  if (redirects < 0 || redirects > MAX_REDIRECTS)
    return fail(EINVAL, "redirects (%s): %" PRId64 " is not in 0..%d",
                host->where(cfg, "redirects"), redirects, MAX_REDIRECTS);
  h->redirects = (int)redirects;
  if (conns < 1 || conns > MAX_CONNECTIONS)
    return fail(EINVAL, "connections (%s): %" PRId64 " is not in 1..%d",
                host->where(cfg, "connections"), conns, MAX_CONNECTIONS);
  h->connections = (unsigned)conns;
  return read_yield(cfg, h);
}

#include "redirect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

char *redact_url(const char *url) {
  CURLU *u = curl_url();
  char *tmp = NULL, *out = NULL;
  if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
      !curl_url_set(u, CURLUPART_USER, NULL, 0) &&
      !curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) &&
      !curl_url_set(u, CURLUPART_QUERY, NULL, 0) &&
      !curl_url_get(u, CURLUPART_URL, &tmp, 0))
    out = strdup(tmp);
  curl_free(tmp);
  curl_url_cleanup(u);
  return out;
}

struct origin {
  char *scheme, *host, *port;
};

static int origin_of(const char *url, struct origin *o) {
  CURLU *u = curl_url();
  memset(o, 0, sizeof *o);
  int bad = !u || curl_url_set(u, CURLUPART_URL, url, 0) ||
            curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) ||
            curl_url_get(u, CURLUPART_HOST, &o->host, 0) ||
            curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT);
  curl_url_cleanup(u);
  return bad ? -1 : 0;
}

static void origin_free(struct origin *o) {
  curl_free(o->scheme);
  curl_free(o->host);
  curl_free(o->port);
}

static int why_not(char *why, size_t len, const char *to, const char *reason) {
  char *shown = redact_url(to);
  snprintf(why, len, "a redirect to %s: %s", shown ? shown : "(bad URL)",
           reason);
  free(shown);
  return -1;
}

int redirect_allowed(const char *from, const char *to, int credentials,
                     char *why, size_t len) {
  struct origin a, b;
  int ra = origin_of(from, &a), rb = to ? origin_of(to, &b) : -1;
  int r = 0;
  if (ra < 0 || rb < 0)
    r = why_not(why, len, to ? to : "", "no usable Location");
  else if (strcasecmp(b.scheme, "http") && strcasecmp(b.scheme, "https"))
    r = why_not(why, len, to, "only http and https are followed");
  else if (!strcasecmp(a.scheme, "https") && strcasecmp(b.scheme, "https"))
    r = why_not(why, len, to, "never from https to http");
  else if (credentials &&
           (strcasecmp(a.scheme, b.scheme) || strcasecmp(a.host, b.host) ||
            strcmp(a.port, b.port)))
    r = why_not(why, len, to,
                "another origin, and the requests carry credentials "
                "(headers, aws_sigv4 or user:password), which never leave "
                "the configured one");
  if (ra == 0) origin_free(&a);
  if (rb == 0) origin_free(&b);
  return r;
}

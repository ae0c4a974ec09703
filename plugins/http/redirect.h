/* Which redirects the http source follows: none unless the redirects
 * setting allows some; never from https to http; never to another origin
 * (scheme, host, port) while the requests carry credentials (headers,
 * aws_sigv4 and its session token, user:password in the URL), so no
 * secret leaves the configured origin. */
#ifndef UFFDKIT_HTTP_REDIRECT_H
#define UFFDKIT_HTTP_REDIRECT_H

#include <stddef.h>

#define MAX_REDIRECTS 10

/* 0 if the request to `from` may go on to `to`, else -1 with why set
 * (naming `to` without credentials or query). */
int redirect_allowed(const char *from, const char *to, int credentials,
                     char *why, size_t len);

/* url without user, password or query (which may hold a presigned
 * signature), malloc'ed; NULL if it does not parse. */
char *redact_url(const char *url);

#endif

/* Accepting connections on a listening socket without spinning when
 * descriptors run out.  With EMFILE (or ENFILE, ENOBUFS, ENOMEM) the
 * socket stays readable, so accepting again at once would take a whole
 * CPU and log without end: the caller takes the socket out of its poll
 * set until intake_resume_due() says to look again. */
#ifndef UFFDKIT_CORE_INTAKE_H
#define UFFDKIT_CORE_INTAKE_H

#include <stdint.h>

#include "log.h"

struct intake {
  const char *what;      /* "listener NAME", "control socket": for the log */
  uint64_t paused_until; /* 0: accepting */
  uint64_t pause_ns;     /* the current pause; doubles up to 1 s */
  int exhausted;         /* in an episode of fd exhaustion (logged once) */
};

/* The first pause; a new episode starts again from it. */
#define INTAKE_PAUSE_NS 50000000ull
#define INTAKE_PAUSE_MAX_NS 1000000000ull

/* accept4(lfd, SOCK_CLOEXEC | SOCK_NONBLOCK).  Returns the connection, or
 * -1: errno EAGAIN when there is nothing more to accept, EMFILE (etc.)
 * when the caller must stop polling lfd (in->paused_until is set; the
 * exhaustion is logged once per episode), anything else after logging. */
int intake_accept(struct intake *in, int lfd);

/* 1 if accepting is paused and its pause is over: the caller polls lfd
 * again. */
int intake_resume_due(struct intake *in);

/* timeout_ms shortened to the end of the pause, if any. */
int intake_timeout(const struct intake *in, int timeout_ms);

#endif

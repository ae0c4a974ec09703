#include "intake.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"

static int out_of_fds(int e) {
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

int intake_accept(struct intake *in, int lfd) {
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    if (in->exhausted)
      log_info("%s: accepting again (descriptors were freed)", in->what);
    in->exhausted = 0;
    in->pause_ns = 0;
    return fd;
  }
  int e = errno;
  if (out_of_fds(e)) {
    if (!in->exhausted)
      log_error("%s: cannot accept: %s; pausing new connections until "
                "descriptors are freed (RLIMIT_NOFILE %s)",
                in->what, strerror(e),
                e == EMFILE ? "of this process reached" : "or system limits");
    in->exhausted = 1;
    in->pause_ns = in->pause_ns ? in->pause_ns * 2 : INTAKE_PAUSE_NS;
    if (in->pause_ns > INTAKE_PAUSE_MAX_NS) in->pause_ns = INTAKE_PAUSE_MAX_NS;
    in->paused_until = clock_mono_ns() + in->pause_ns;
  } else if (e != EAGAIN && e != EINTR && e != ECONNABORTED) {
    log_warn("%s: accept: %s", in->what, strerror(e));
  }
  errno = e == EINTR || e == ECONNABORTED ? EAGAIN : e;
  return -1;
}

int intake_resume_due(struct intake *in) {
  if (!in->paused_until || clock_mono_ns() < in->paused_until) return 0;
  in->paused_until = 0;
  return 1;
}

int intake_timeout(const struct intake *in, int timeout_ms) {
  if (!in->paused_until) return timeout_ms;
  uint64_t t = clock_mono_ns();
  int ms = in->paused_until <= t
               ? 0
               : (int)((in->paused_until - t + 999999) / 1000000);
  return timeout_ms < 0 || ms < timeout_ms ? ms : timeout_ms;
}

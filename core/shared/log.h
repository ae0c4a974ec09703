/* Logging to stderr, one line per call, text or JSON (journald or a log
 * shipper reads them).  Thread-safe: each line is one write(2). */
#ifndef UFFDKIT_CORE_LOG_H
#define UFFDKIT_CORE_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
int log_get_level(void);
void log_set_json(int on);
/* Name of this process in log lines ("uffdkit" or "uffdkit-worker"). */
void log_set_process(const char *name);
int log_level_from_name(const char *name);

void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

/* A message a peer can trigger (a refused connection, a malformed
 * handshake, an event a VMM sends) goes through a limit of its own, kept
 * per listener or per session, so that no peer can flood the log: at most
 * LOG_LIMIT_BURST lines in the LOG_LIMIT_WINDOW_NS from the first; the
 * first line of the next window says how many were suppressed.
 * Zero-initialised; safe to share between threads. */
#define LOG_LIMIT_BURST 20
#define LOG_LIMIT_WINDOW_NS 10000000000ull
struct log_limit {
  uint64_t window; /* when the current window started (monotonic ns) */
  uint32_t count;  /* lines logged in it */
  uint32_t suppressed;
};
void log_limited(struct log_limit *lim, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One log line about session id, "session ID: ...": the one place that
 * prefix is written (the worker's session_log and the supervisor's
 * sv_log pass the session they carry).  _limited: through a limit. */
#define log_session(level, id, fmt, ...)                                       \
  do {                                                                         \
    if (log_get_level() >= (level))                                            \
      log_msg(level, "session %llu: " fmt, (unsigned long long)(id),           \
              ##__VA_ARGS__);                                                  \
  } while (0)
#define log_session_limited(lim, level, id, fmt, ...)                          \
  log_limited(lim, level, "session %llu: " fmt, (unsigned long long)(id),      \
              ##__VA_ARGS__)

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
  do {                                                                         \
    if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__);         \
  } while (0)

#endif

/* Logging to stderr, one line per call, text or JSON (journald or a log
 * shipper reads them).  Thread-safe: each line is one write(2). */
#ifndef UFFDKIT_CORE_LOG_H
#define UFFDKIT_CORE_LOG_H

#include <stdarg.h>

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

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
  do {                                                                         \
    if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__);         \
  } while (0)

#endif

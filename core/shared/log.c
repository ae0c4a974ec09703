#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* A worker changes both at a reload while its threads log: atomics. */
static int level = LOG_INFO;
static int json;
static int syslog_prefix = -1;
static const char *process = "uffdkit";
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(int l) {
  __atomic_store_n(&level, l, __ATOMIC_RELAXED);
}

int log_get_level(void) {
  return __atomic_load_n(&level, __ATOMIC_RELAXED);
}

void log_set_json(int on) {
  __atomic_store_n(&json, on, __ATOMIC_RELAXED);
}

void log_set_process(const char *name) {
  process = name;
}

int log_level_from_name(const char *name) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

/* Escapes s into out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s) {
  size_t n = 0;
  for (; *s && n + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n] = 0;
  return n;
}

void log_vmsg(int l, const char *fmt, va_list ap) {
  if (l > log_get_level()) return;
  char msg[2048], line[4608];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[40];
  size_t sl = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + sl, sizeof stamp - sl, ".%03ldZ", ts.tv_nsec / 1000000);
  int n;
  if (__atomic_load_n(&json, __ATOMIC_RELAXED)) {
    char esc[4096];
    json_escape(esc, sizeof esc, msg);
    n = snprintf(line, sizeof line,
                 "{\"time\":\"%s\",\"level\":\"%s\",\"process\":\"%s\","
                 "\"pid\":%d,\"msg\":\"%s\"}\n",
                 stamp, names[l], process, (int)getpid(), esc);
  } else {
    /* Under journald, "<N>" keeps the level and journald adds the time. */
    int sp = __atomic_load_n(&syslog_prefix, __ATOMIC_RELAXED);
    if (sp < 0) { /* any thread may be first: the same answer for all */
      sp = getenv("JOURNAL_STREAM") != NULL;
      __atomic_store_n(&syslog_prefix, sp, __ATOMIC_RELAXED);
    }
    if (sp)
      n = snprintf(line, sizeof line, "<%d>%s[%d] %s: %s\n", 3 + l, process,
                   (int)getpid(), names[l], msg);
    else
      n = snprintf(line, sizeof line, "%s %s[%d] %s: %s\n", stamp, process,
                   (int)getpid(), names[l], msg);
  }
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}

void log_msg(int l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(l, fmt, ap);
  va_end(ap);
}

/* Whether the next line under lim may be written; *held is set to the
 * lines suppressed before it (to be reported with it).  A window starts
 * with the first line after the previous one ended. */
static int limit_admit(struct log_limit *lim, uint32_t *held) {
  uint64_t now = clock_mono_ns() + 1; /* 0: never used */
  uint64_t start = __atomic_load_n(&lim->window, __ATOMIC_ACQUIRE);
  *held = 0;
  if ((!start || now - start >= LOG_LIMIT_WINDOW_NS) &&
      __atomic_compare_exchange_n(&lim->window, &start, now, 0,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    __atomic_store_n(&lim->count, 0, __ATOMIC_RELEASE);
    *held = __atomic_exchange_n(&lim->suppressed, 0, __ATOMIC_ACQ_REL);
  }
  if (__atomic_fetch_add(&lim->count, 1, __ATOMIC_ACQ_REL) < LOG_LIMIT_BURST)
    return 1;
  __atomic_fetch_add(&lim->suppressed, 1, __ATOMIC_RELAXED);
  return 0;
}

void log_limited(struct log_limit *lim, int l, const char *fmt, ...) {
  if (l > log_get_level()) return;
  uint32_t held;
  if (!limit_admit(lim, &held)) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (held)
    log_msg(l, "%s (%u similar messages suppressed)", msg, held);
  else
    log_msg(l, "%s", msg);
}

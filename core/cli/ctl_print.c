/* `uffdkit ctl`'s tables: a response of the control socket printed for a
 * person. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "shm.h"

/* ---- tables ---- */

#define MAX_COLS 16

struct table {
  int ncols;
  const char *align; /* 'l' or 'r' per column; NULL: all left */
  char **cells;      /* rows * ncols */
  size_t nrows;
};

static void t_row(struct table *t, ...) {
  char **c = realloc(t->cells, (t->nrows + 1) * (size_t)t->ncols * sizeof *c);
  if (!c) return;
  t->cells = c;
  va_list ap;
  va_start(ap, t);
  for (int i = 0; i < t->ncols; i++) {
    const char *s = va_arg(ap, const char *);
    c[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(s ? s : "");
  }
  va_end(ap);
  t->nrows++;
}

static void t_free(struct table *t) {
  for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->nrows = 0;
}

static void t_print(FILE *f, struct table *t) {
  size_t w[MAX_COLS] = {0};
  for (int j = 0; j < t->ncols; j++)
    for (size_t i = 0; i < t->nrows; i++) {
      const char *s = t->cells[i * (size_t)t->ncols + (size_t)j];
      size_t l = s ? strlen(s) : 0;
      if (l > w[j]) w[j] = l;
    }
  for (size_t i = 0; i < t->nrows; i++) {
    for (int j = 0; j < t->ncols; j++) {
      const char *s = t->cells[i * (size_t)t->ncols + (size_t)j];
      if (!s) s = "";
      int last = j == t->ncols - 1;
      if (t->align && t->align[j] == 'r')
        fprintf(f, "%*s", (int)w[j], s);
      else if (last)
        fputs(s, f);
      else
        fprintf(f, "%-*s", (int)w[j], s);
      if (!last) fputs("  ", f);
    }
    fputc('\n', f);
  }
  t_free(t);
}

/* ---- formatting values ---- */

struct cell {
  char s[64];
};

static double getnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *getstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static struct cell fmt_int(double v) {
  struct cell c;
  snprintf(c.s, sizeof c.s, "%.0f", v);
  return c;
}

static struct cell fmt_bytes(double v) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  struct cell c;
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(c.s, sizeof c.s, "%.0f B", v);
  else
    snprintf(c.s, sizeof c.s, "%.*f %s",
             v < 10    ? 2
             : v < 100 ? 1
                       : 0,
             v, unit[u]);
  return c;
}

static struct cell fmt_page(double v) {
  struct cell c;
  if (v >= 1048576 && fmod(v, 1048576) == 0)
    snprintf(c.s, sizeof c.s, "%.0fM", v / 1048576);
  else if (v >= 1024 && fmod(v, 1024) == 0)
    snprintf(c.s, sizeof c.s, "%.0fK", v / 1024);
  else
    snprintf(c.s, sizeof c.s, "%.0f", v);
  return c;
}

static struct cell fmt_time(double unix_ns) {
  struct cell c;
  time_t t = (time_t)(unix_ns / 1e9);
  struct tm tm;
  if (!localtime_r(&t, &tm) ||
      !strftime(c.s, sizeof c.s, "%Y-%m-%d %H:%M:%S", &tm))
    snprintf(c.s, sizeof c.s, "?");
  return c;
}

static struct cell fmt_rate(double v) {
  struct cell c;
  snprintf(c.s, sizeof c.s, "%.1f", v);
  return c;
}

/* A latency bound in microseconds ("< 512 us"), or null: over the last
 * bucket. */
static struct cell fmt_bound(const cJSON *lat, const char *k) {
  struct cell c;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(lat, k);
  if (cJSON_IsNumber(v) && v->valuedouble > 0)
    snprintf(c.s, sizeof c.s, "< %.0f us", v->valuedouble);
  else if (cJSON_IsNull(v))
    snprintf(c.s, sizeof c.s, ">= %d us", 4 << (LAT_BUCKETS - 2));
  else
    snprintf(c.s, sizeof c.s, "-");
  return c;
}

/* ---- the commands' output ---- */

/* Milliseconds from microseconds, or "-" when v is not a number. */
static struct cell fmt_ms(const cJSON *o, const char *k) {
  struct cell c;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (cJSON_IsNumber(v))
    snprintf(c.s, sizeof c.s, "%.1f ms", v->valuedouble / 1000);
  else
    snprintf(c.s, sizeof c.s, "-");
  return c;
}

/* How each live restore went: its generation, when its first fault was
 * served, its fault latency, what its replay installed. */
static void print_figures(FILE *f, const cJSON *ss) {
  struct table t = {.ncols = 8, .align = "rrrrrrrr"};
  t_row(&t, "SESSION", "GEN", "FIRST FAULT", "P50", "P99", "LISTED", "REPLAYED",
        "REPLAY");
  const cJSON *s;
  cJSON_ArrayForEach(s, ss) {
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(s, "latency");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(s, "replay");
    int has = cJSON_IsObject(rp);
    t_row(&t, fmt_int(getnum(s, "id")).s, fmt_int(getnum(s, "generation")).s,
          fmt_ms(s, "first_fault_after_us").s, fmt_bound(lat, "p50_us").s,
          fmt_bound(lat, "p99_us").s,
          has ? fmt_int(getnum(rp, "listed")).s : "-",
          has ? fmt_int(getnum(rp, "installed")).s : "-",
          has ? fmt_ms(rp, "duration_us").s : "-");
  }
  t_print(f, &t);
}

static int print_list(FILE *f, const cJSON *r) {
  const cJSON *ls = cJSON_GetObjectItemCaseSensitive(r, "listeners");
  const cJSON *ss = cJSON_GetObjectItemCaseSensitive(r, "sessions");
  if (!cJSON_IsArray(ls) || !cJSON_IsArray(ss)) return -1;
  struct table t = {.ncols = 10, .align = "llllrrrrrr"};
  t_row(&t, "LISTENER", "SOCKET", "SOURCE", "STATE", "LIVE", "TOTAL", "FAULTS",
        "PAGES", "ZERO", "BYTES");
  const cJSON *l;
  cJSON_ArrayForEach(l, ls) {
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(l, "accepting");
    t_row(&t, getstr(l, "name"), getstr(l, "socket"), getstr(l, "source"),
          cJSON_IsFalse(acc) ? "closed" : "open",
          fmt_int(getnum(l, "sessions_live")).s,
          fmt_int(getnum(l, "sessions_total")).s,
          fmt_int(getnum(l, "faults")).s, fmt_int(getnum(l, "pages_copied")).s,
          fmt_int(getnum(l, "zero_pages")).s,
          fmt_bytes(getnum(l, "bytes_copied")).s);
  }
  t_print(f, &t);
  fputc('\n', f);
  if (!cJSON_GetArraySize(ss)) {
    fputs("no live sessions\n", f);
    return 0;
  }
  t.ncols = 13;
  t.align = "rlrrrrrlrrrrr";
  t_row(&t, "SESSION", "LISTENER", "PID", "UID", "REGIONS", "MEMORY", "PAGE",
        "STARTED", "PAGES", "ZERO", "BYTES", "FAULTS", "FAULTS/S");
  const cJSON *s;
  cJSON_ArrayForEach(s, ss) {
    t_row(
        &t, fmt_int(getnum(s, "id")).s, getstr(s, "listener"),
        fmt_int(getnum(s, "pid")).s, fmt_int(getnum(s, "uid")).s,
        fmt_int(getnum(s, "regions")).s, fmt_bytes(getnum(s, "memory_bytes")).s,
        fmt_page(getnum(s, "page_size")).s,
        fmt_time(getnum(s, "started_unix_ns")).s,
        fmt_int(getnum(s, "pages_copied")).s,
        fmt_int(getnum(s, "zero_pages")).s,
        fmt_bytes(getnum(s, "bytes_copied")).s, fmt_int(getnum(s, "faults")).s,
        fmt_rate(getnum(s, "faults_per_second")).s);
  }
  t_print(f, &t);
  fputc('\n', f);
  print_figures(f, ss);
  return 0;
}

static int print_stats(FILE *f, const cJSON *r) {
  const cJSON *ls = cJSON_GetObjectItemCaseSensitive(r, "listeners");
  if (!cJSON_IsArray(ls)) return -1;
  if (!cJSON_GetArraySize(ls)) {
    fputs("no listeners\n", f);
    return 0;
  }
  /* One column per listener, MAX_COLS - 1 at a time. */
  static const struct {
    const char *label, *key;
    int where; /* 0 listener, 1 counters, 2 latency; 3: bytes in counters */
  } rows[] = {
      {"source", "source", 0},
      {"sessions live", "sessions_live", 0},
      {"sessions total", "sessions_total", 0},
      {"refused peers", "refused_peers", 0},
      {"handshake errors", "handshake_errors", 0},
      {"worker restarts", "worker_restarts", 0},
      {"faults", "faults", 1},
      {"pages copied", "pages_copied", 1},
      {"zero pages", "zero_pages", 1},
      {"bytes copied", "bytes_copied", 3},
      {"removes", "removes", 1},
      {"removed pages", "removed_pages", 1},
      {"stale faults", "stale_faults", 1},
      {"eagain", "eagain", 1},
      {"source errors", "source_errors", 1},
      {"prefetched pages", "prefetched_pages", 1},
      {"VMs killed", "vms_killed", 1},
      {"fault time mean", "mean_us", 2},
      {"fault time p50", "p50_us", 2},
      {"fault time p90", "p90_us", 2},
      {"fault time p99", "p99_us", 2},
  };
  int n = cJSON_GetArraySize(ls);
  for (int first = 0; first < n; first += MAX_COLS - 1) {
    int cols = n - first < MAX_COLS - 1 ? n - first : MAX_COLS - 1;
    struct table t = {.ncols = cols + 1, .align = "lrrrrrrrrrrrrrrr"};
    size_t nr = sizeof rows / sizeof *rows + 1;
    for (size_t i = 0; i < nr; i++) {
      const char *cells[MAX_COLS] = {0};
      struct cell vals[MAX_COLS];
      cells[0] = i ? rows[i - 1].label : "LISTENER";
      for (int c = 0; c < cols; c++) {
        const cJSON *l = cJSON_GetArrayItem(ls, first + c);
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(l, "counters");
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(l, "latency");
        if (!i) {
          cells[c + 1] = getstr(l, "name");
          continue;
        }
        int w = rows[i - 1].where;
        const char *k = rows[i - 1].key;
        if (w == 0 && !strcmp(k, "source"))
          cells[c + 1] = getstr(l, k);
        else if (w == 0)
          vals[c] = fmt_int(getnum(l, k));
        else if (w == 1)
          vals[c] = fmt_int(getnum(cs, k));
        else if (w == 3)
          vals[c] = fmt_bytes(getnum(cs, k));
        else if (!strcmp(k, "mean_us"))
          snprintf(vals[c].s, sizeof vals[c].s, "%.1f us", getnum(lat, k));
        else
          vals[c] = fmt_bound(lat, k);
        if (!cells[c + 1]) cells[c + 1] = vals[c].s;
      }
      t_row(&t, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5],
            cells[6], cells[7], cells[8], cells[9], cells[10], cells[11],
            cells[12], cells[13], cells[14], cells[15]);
    }
    t_print(f, &t);
  }
  /* The sources' own counters, one line each. */
  struct table t = {.ncols = 4, .align = "lllr"};
  t_row(&t, "LISTENER", "INSTANCE", "COUNTER", "VALUE");
  const cJSON *l;
  cJSON_ArrayForEach(l, ls) {
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(l, "sources"), *s;
    cJSON_ArrayForEach(s, src) {
      const cJSON *cs = cJSON_GetObjectItemCaseSensitive(s, "counters"), *c;
      cJSON_ArrayForEach(c, cs) {
        t_row(&t, getstr(l, "name"), getstr(s, "instance"), c->string,
              strstr(c->string, "bytes") ? fmt_bytes(c->valuedouble).s
                                         : fmt_int(c->valuedouble).s);
      }
      const cJSON *hr = cJSON_GetObjectItemCaseSensitive(s, "hit_ratio");
      if (hr) {
        struct cell p;
        if (cJSON_IsNumber(hr))
          snprintf(p.s, sizeof p.s, "%.1f%%", hr->valuedouble * 100);
        else
          snprintf(p.s, sizeof p.s, "-");
        t_row(&t, getstr(l, "name"), getstr(s, "instance"), "hit ratio", p.s);
      }
    }
  }
  if (t.nrows > 1) {
    fputc('\n', f);
    t_print(f, &t);
  }
  t_free(&t);
  return 0;
}

int ctl_print(FILE *f, const char *cmd, const cJSON *resp) {
  if (!strcmp(cmd, "list")) return print_list(f, resp);
  if (!strcmp(cmd, "stats")) return print_stats(f, resp);
  if (!strcmp(cmd, "metrics")) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(resp, "metrics");
    if (!cJSON_IsString(m)) return -1;
    fputs(m->valuestring, f);
    return 0;
  }
  if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"))) return -1;
  if (!strcmp(cmd, "reload")) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(resp, "message");
    fprintf(f, "%s\n",
            cJSON_IsString(m) ? m->valuestring : "reloading the configuration");
  } else
    fprintf(f, "listener %s is draining\n", getstr(resp, "listener"));
  return 0;
}

#include "metrics.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- a growing text buffer ---- */

struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
};

static void sb_grow(struct sbuf *b, size_t more) {
  if (b->oom || b->len + more < b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap <= b->len + more)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return;
  }
  b->p = p;
  b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n) {
  sb_grow(b, n);
  if (b->oom) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s) {
  sb_put(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  sb_grow(b, (size_t)n);
  if (b->oom) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped. */
static void sb_label(struct sbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      sb_puts(b, "\\\\");
    else if (*s == '"')
      sb_puts(b, "\\\"");
    else if (*s == '\n')
      sb_puts(b, "\\n");
    else
      sb_put(b, s, 1);
  }
}

/* HELP text: backslash and newline escaped. */
static void sb_help(struct sbuf *b, const char *name, const char *help,
                    const char *type) {
  sb_printf(b, "# HELP %s ", name);
  for (const char *s = help; *s; s++) {
    if (*s == '\\')
      sb_puts(b, "\\\\");
    else if (*s == '\n')
      sb_puts(b, "\\n");
    else
      sb_put(b, s, 1);
  }
  sb_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* v / 10^digits as an exact decimal without trailing zeros. */
static void sb_fixed(struct sbuf *b, uint64_t v, int digits) {
  uint64_t scale = 1;
  for (int i = 0; i < digits; i++)
    scale *= 10;
  uint64_t frac = v % scale;
  sb_printf(b, "%" PRIu64, v / scale);
  if (!frac) return;
  char f[24];
  snprintf(f, sizeof f, "%0*" PRIu64, digits, frac);
  size_t n = strlen(f);
  while (n && f[n - 1] == '0')
    n--;
  sb_put(b, ".", 1);
  sb_put(b, f, n);
}

static void sb_listener(struct sbuf *b, const char *metric,
                        const struct stats_listener *l) {
  sb_printf(b, "%s{listener=\"", metric);
  sb_label(b, l->name);
  sb_puts(b, "\"}");
}

/* ---- rendering ---- */

#define SC(field) offsetof(struct session_counters, field)
static const struct {
  const char *name;
  size_t off;
  const char *help;
} session_metrics[] = {
    {"uffdkit_faults_total", SC(faults), "Page faults read from userfaultfds."},
    {"uffdkit_pages_copied_total", SC(pages_copied),
     "Pages installed from the source."},
    {"uffdkit_zero_pages_total", SC(zero_pages), "Pages installed as zeros."},
    {"uffdkit_bytes_copied_total", SC(bytes_copied),
     "Bytes installed from the source."},
    {"uffdkit_removes_total", SC(removes),
     "REMOVE events (memory discarded by the guest's balloon)."},
    {"uffdkit_removed_pages_total", SC(removed_pages),
     "Pages discarded by REMOVE events."},
    {"uffdkit_stale_faults_total", SC(stale_faults),
     "Faults on pages already installed."},
    {"uffdkit_eagain_total", SC(eagain),
     "Page installs that returned EAGAIN and were retried."},
    {"uffdkit_source_errors_total", SC(source_errors),
     "Reads from the source that failed."},
    {"uffdkit_prefetched_pages_total", SC(prefetched_pages),
     "Pages installed ahead of their fault."},
    {"uffdkit_vms_killed_total", SC(vms_killed),
     "VMs killed because their memory could not be read (on_source_error)."},
};

#define LS(field) offsetof(struct listener_stats, field)
static const struct {
  const char *name;
  size_t off;
  const char *type;
  const char *help;
} listener_metrics[] = {
    {"uffdkit_sessions_live", LS(sessions_live), "gauge",
     "Sessions being served."},
    {"uffdkit_sessions_total", LS(sessions_total), "counter",
     "Sessions started."},
    {"uffdkit_refused_peers_total", LS(refused_peers), "counter",
     "Connections refused by allow lists or max_sessions."},
    {"uffdkit_handshake_errors_total", LS(handshake_errors), "counter",
     "Connections closed for a bad or missing handshake."},
    {"uffdkit_worker_restarts_total", LS(worker_restarts), "counter",
     "Times the worker died and was restarted."},
};

/* The metric name of a plugin counter: uffdkit_plugin_NAME_total with
 * every character Prometheus does not allow in a name made '_'.  Plugin
 * counters have their own prefix, which no metric of the core uses, so a
 * plugin's "errors" is never the same family as the core's
 * uffdkit_source_errors_total. */
#define PLUGIN_PREFIX "uffdkit_plugin_"
static void counter_metric(const char *name, char *out, size_t len) {
  int n = snprintf(out, len, PLUGIN_PREFIX "%s", name);
  if (n < 0 || (size_t)n >= len) n = (int)len - 1;
  for (char *s = out + strlen(PLUGIN_PREFIX); *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') *s = '_';
  size_t l = strlen(out);
  if (l < 6 || strcmp(out + l - 6, "_total"))
    snprintf(out + l, len - l, "_total");
}

static uint32_t ncounters(const struct listener_stats *st) {
  uint32_t n = __atomic_load_n(&st->ncounters, __ATOMIC_ACQUIRE);
  return n < LISTENER_COUNTERS ? n : LISTENER_COUNTERS;
}

static void render_histogram(struct sbuf *b, const struct stats_listeners *ls,
                             const struct session_counters *tot) {
  const char *m = "uffdkit_fault_service_seconds";
  sb_help(b, m, "Time from reading a fault to installing its page.",
          "histogram");
  for (int i = 0; i < ls->n; i++) {
    const struct stats_listener *l = &ls->l[i];
    const struct session_counters *c = &tot[i];
    uint64_t cum = 0;
    for (int k = 0; k < LAT_BUCKETS; k++) {
      cum += c->lat_buckets[k];
      sb_printf(b, "%s_bucket{listener=\"", m);
      sb_label(b, l->name);
      sb_puts(b, "\",le=\"");
      if (k == LAT_BUCKETS - 1)
        sb_puts(b, "+Inf");
      else
        sb_fixed(b, 4ull << k, 6); /* bucket k: below 2^(k+2) us */
      sb_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    sb_listener(b, "uffdkit_fault_service_seconds_sum", l);
    sb_put(b, " ", 1);
    sb_fixed(b, c->lat_sum_ns, 9);
    sb_put(b, "\n", 1);
    /* The +Inf bucket, so the two always agree. */
    sb_listener(b, "uffdkit_fault_service_seconds_count", l);
    sb_printf(b, " %" PRIu64 "\n", cum);
  }
}

static void render_plugin_counters(struct sbuf *b,
                                   const struct stats_listeners *ls) {
  /* One family per metric name, its samples from every listener. */
  size_t max = (size_t)ls->n * LISTENER_COUNTERS, nf = 0;
  char(*fam)[128] = max ? calloc(max, sizeof *fam) : NULL;
  if (max && !fam) {
    b->oom = 1;
    return;
  }
  for (int i = 0; i < ls->n; i++) {
    const struct listener_stats *st = ls->l[i].stats;
    uint32_t n = ncounters(st);
    for (uint32_t k = 0; k < n; k++) {
      char m[128];
      counter_metric(st->counters[k].name, m, sizeof m);
      size_t f = 0;
      while (f < nf && strcmp(fam[f], m))
        f++;
      if (f < nf) continue;
      snprintf(fam[nf++], sizeof fam[0], "%s", m);
      sb_help(b, m,
              st->counters[k].help[0] ? st->counters[k].help
                                      : st->counters[k].name,
              "counter");
      for (int j = i; j < ls->n; j++) {
        const struct stats_listener *l = &ls->l[j];
        uint32_t nj = ncounters(l->stats);
        for (uint32_t q = j == i ? k : 0; q < nj; q++) {
          const struct plugin_counter *pc = &l->stats->counters[q];
          char mq[128];
          counter_metric(pc->name, mq, sizeof mq);
          if (strcmp(mq, m)) continue;
          sb_printf(b, "%s{listener=\"", m);
          sb_label(b, l->name);
          sb_puts(b, "\",instance=\"");
          sb_label(b, pc->instance);
          sb_printf(b, "\"} %" PRIu64 "\n", shm_load(&pc->value));
        }
      }
    }
  }
  free(fam);
}

char *metrics_render(const struct stats_view *v, size_t *len) {
  struct sbuf b = {0};
  struct stats_listeners lsv;
  const struct stats_listeners *ls = &lsv;
  if (stats_listeners_get(v, &lsv) < 0) return NULL;
  /* Per-restore listeners are summed per template (metrics_extra), so
   * the number of series stays bounded. */
  int kept = 0;
  for (int i = 0; i < lsv.n; i++)
    if (!lsv.l[i].template) lsv.l[kept++] = lsv.l[i];
  lsv.n = kept;
  struct session_counters *tot = calloc(ls->n ? (size_t)ls->n : 1, sizeof *tot);
  if (!tot) {
    stats_listeners_free(&lsv);
    return NULL;
  }
  stats_totals(v, ls->l, ls->n, tot);
  sb_grow(&b, 0);
  if (!b.oom) b.p[0] = 0;

  sb_help(&b, "uffdkit_listener_info",
          "A listener: its socket and its source with its layers.", "gauge");
  for (int i = 0; i < ls->n; i++) {
    const struct stats_listener *l = &ls->l[i];
    sb_puts(&b, "uffdkit_listener_info{listener=\"");
    sb_label(&b, l->name);
    sb_puts(&b, "\",socket=\"");
    sb_label(&b, l->socket);
    sb_puts(&b, "\",source=\"");
    sb_label(&b, l->source);
    sb_puts(&b, "\"} 1\n");
  }
  for (size_t m = 0; m < sizeof listener_metrics / sizeof *listener_metrics;
       m++) {
    sb_help(&b, listener_metrics[m].name, listener_metrics[m].help,
            listener_metrics[m].type);
    for (int i = 0; i < ls->n; i++) {
      const struct stats_listener *l = &ls->l[i];
      const uint64_t *p =
          (const uint64_t *)((const char *)l->stats + listener_metrics[m].off);
      sb_listener(&b, listener_metrics[m].name, l);
      sb_printf(&b, " %" PRIu64 "\n", shm_load(p));
    }
  }
  for (size_t m = 0; m < sizeof session_metrics / sizeof *session_metrics;
       m++) {
    sb_help(&b, session_metrics[m].name, session_metrics[m].help, "counter");
    for (int i = 0; i < ls->n; i++) {
      const uint64_t *p =
          (const uint64_t *)((const char *)&tot[i] + session_metrics[m].off);
      sb_listener(&b, session_metrics[m].name, &ls->l[i]);
      sb_printf(&b, " %" PRIu64 "\n", *p);
    }
  }
  render_histogram(&b, ls, tot);
  render_plugin_counters(&b, ls);
  if (v->metrics_extra) {
    char *extra = NULL;
    size_t elen = 0;
    FILE *m = open_memstream(&extra, &elen);
    if (m) {
      v->metrics_extra(v->opaque, m);
      fclose(m);
      sb_puts(&b, extra);
    }
    free(extra);
  }
  free(tot);
  stats_listeners_free(&lsv);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}

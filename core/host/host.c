#include "host.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "hosterror.h"
#include "log.h"
#include "mapped.h"
#include "pconf.h"
#include "pinned.h"
#include "stack.h"

static void h_log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(level < 0 ? 0 : level > 3 ? 3 : level, fmt, ap);
  va_end(ap);
}

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener_stats private_stats; /* when no listener owns us */

static uint64_t *h_counter(const struct ufk_config *c, const char *name,
                           const char *help) {
  struct listener_stats *st = pconf_stats(c) ? pconf_stats(c) : &private_stats;
  static uint64_t overflow;
  uint64_t *r = &overflow;
  pthread_mutex_lock(&counter_lock);
  uint32_t i;
  for (i = 0; i < st->ncounters && i < LISTENER_COUNTERS; i++)
    if (!strcmp(st->counters[i].name, name) &&
        !strcmp(st->counters[i].instance, pconf_instance(c)))
      break;
  if (i < LISTENER_COUNTERS) {
    struct plugin_counter *pc = &st->counters[i];
    if (i == st->ncounters) {
      snprintf(pc->name, sizeof pc->name, "%.47s", name);
      snprintf(pc->instance, sizeof pc->instance, "%.79s", pconf_instance(c));
      snprintf(pc->help, sizeof pc->help, "%.119s", help ? help : "");
      __atomic_store_n(&st->ncounters, i + 1, __ATOMIC_RELEASE);
    }
    r = &pc->value;
  } else {
    log_warn("%s: more than %d counters; '%s' is not exported",
             pconf_instance(c), LISTENER_COUNTERS, name);
  }
  pthread_mutex_unlock(&counter_lock);
  return r;
}

static const struct ufk_host table;

static struct ufk_next *h_source_open(const struct ufk_config *c,
                                      const char *key,
                                      const char *const *vars) {
  const config_setting_t *group = pconf_group(c);
  const config_setting_t *g =
      group ? config_setting_get_member(group, key) : NULL;
  if (!g || !config_setting_is_group(g)) {
    host_error(EINVAL, "%s: %s: '%s' must be a group { plugin = ...; }",
               pconf_where(c, key), pconf_instance(c), key);
    return NULL;
  }
  return stack_open_nested(&table, c, g, vars);
}

static void h_source_close(struct ufk_next *n) {
  stack_close_nested(n);
}

static const struct ufk_host table = {
    .size = sizeof(struct ufk_host),
    .abi_minor = UFK_ABI_MINOR,
    .log = h_log,
    .error = host_error,
    .get_string = pconf_get_string,
    .get_int = pconf_get_int,
    .get_bool = pconf_get_bool,
    .get_size = pconf_get_size,
    .get_duration_ns = pconf_get_duration_ns,
    .get_list_count = pconf_get_list_count,
    .get_list_item = pconf_get_list_item,
    .where = pconf_where,
    .instance_name = pconf_instance,
    .source_open = h_source_open,
    .source_close = h_source_close,
    .counter = h_counter,
    .now_ns = clock_mono_ns,
    .open_file = pinned_open,
    .copy_mapped = host_copy_mapped,
};

const struct ufk_host *host_table(void) {
  return &table;
}

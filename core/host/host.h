/* The services table handed to plugins, and the view of one instance's
 * settings (struct ufk_config) its getters read. */
#ifndef UFFDKIT_CORE_HOST_H
#define UFFDKIT_CORE_HOST_H

#include <libconfig.h>
#include <uffdkit/plugin.h>

#include "config.h"
#include "shm.h"

const struct ufk_host *host_table(void);

/* The error the last failing callback on this thread reported. */
const char *host_last_error(void);
int host_last_errno(void);
void host_clear_error(void);

/* Settings of one instance: group is its libconfig group; vars are
 * (name, value) pairs replacing "{name}" in string values. */
struct ufk_config *pconf_new(const struct daemon_conf *conf,
                             const config_setting_t *group,
                             const struct ufk_param *params,
                             const char *instance, const char *const *vars,
                             struct listener_stats *stats);
/* Refuses unknown keys (other than those in skip), wrong types and missing
 * required keys, naming file and line.  Returns 0 or -1. */
int pconf_validate(const struct ufk_config *c, const char *const *skip,
                   char *err, size_t errlen);
void pconf_free(struct ufk_config *c);
const char *pconf_instance(const struct ufk_config *c);
const config_setting_t *pconf_group(const struct ufk_config *c);
const struct daemon_conf *pconf_daemon(const struct ufk_config *c);
struct listener_stats *pconf_stats(const struct ufk_config *c);

#endif

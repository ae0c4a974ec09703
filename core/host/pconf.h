/* The settings of one plugin instance (struct ufk_config, opaque to the
 * plugin): its config group, with defaults from the plugin's params table
 * and "{name}" variables substituted, read through the host's getters. */
#ifndef UFFDKIT_CORE_PCONF_H
#define UFFDKIT_CORE_PCONF_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <uffdkit/plugin.h>

#include "config.h"
#include "shm.h"

/* Settings of one instance of plugin: group is its libconfig group; vars
 * are (name, value) pairs replacing "{name}" in string values. */
struct ufk_config *pconf_new(const struct daemon_conf *conf,
                             const config_setting_t *group,
                             const struct ufk_plugin *plugin,
                             const char *instance, const char *const *vars,
                             struct listener_stats *stats);
/* Refuses unknown keys (other than those in skip), wrong types and missing
 * required keys: 0, or -1 with err at the file and line of the setting
 * ("LISTENER/PLUGIN: what is wrong"). */
int pconf_validate(const struct ufk_config *c, const char *const *skip,
                   struct conf_err *err);
/* A callback of the plugin failed: err at the file and line of the
 * instance's settings, "LISTENER/PLUGIN: " what, then the message the
 * plugin gave host->error (which names its key with host->where).  -1. */
int pconf_failed(const struct ufk_config *c, const char *what,
                 struct conf_err *err);
void pconf_free(struct ufk_config *c);
const char *pconf_instance(const struct ufk_config *c);
const config_setting_t *pconf_group(const struct ufk_config *c);
const struct daemon_conf *pconf_daemon(const struct ufk_config *c);
struct listener_stats *pconf_stats(const struct ufk_config *c);
uint32_t pconf_abi_minor(const struct ufk_config *c);

/* The host's getters (see struct ufk_host): 0 with *out set, 1 when the key
 * is absent and has no default, -1 after host_error naming key and place. */
int pconf_get_string(const struct ufk_config *c, const char *key,
                     const char **out);
int pconf_get_int(const struct ufk_config *c, const char *key, int64_t *out);
int pconf_get_bool(const struct ufk_config *c, const char *key, int *out);
int pconf_get_size(const struct ufk_config *c, const char *key, uint64_t *out);
int pconf_get_duration_ns(const struct ufk_config *c, const char *key,
                          uint64_t *out);
int pconf_get_list_count(const struct ufk_config *c, const char *key);
int pconf_get_list_item(const struct ufk_config *c, const char *key, int index,
                        const char **out);
/* "file:line" or "command line", in a per-thread buffer. */
const char *pconf_where(const struct ufk_config *c, const char *key);

#endif

/* A source and the layers in front of it, built from one listener's config
 * (or a nested source group), with the thread model and concurrency limit
 * of every level enforced here, in one place. */
#ifndef UFFDKIT_CORE_STACK_H
#define UFFDKIT_CORE_STACK_H

#include <stdint.h>
#include <uffdkit/plugin.h>

#include "config.h"
#include "shm.h"

struct stack;

/* Creates and starts the listener's stack.  NULL with err set. */
struct stack *stack_build(const struct daemon_conf *conf,
                          const struct listener_conf *l, const char *plugin_dir,
                          struct listener_stats *stats, char *err,
                          size_t errlen);
/* Validates settings only (create, no start), for --check-config. */
int stack_check(const struct daemon_conf *conf, const struct listener_conf *l,
                const char *plugin_dir, char *err, size_t errlen);
void stack_destroy(struct stack *s);

int64_t stack_size(const struct stack *s);
uint32_t stack_flags(const struct stack *s); /* UFK_PLUGIN_FAST, _NOWAIT */
uint32_t stack_concurrency(const struct stack *s); /* 0: unlimited */
const char *stack_name(const struct stack *s);

int stack_read(struct stack *s, void *buf, uint64_t len, uint64_t off,
               uint32_t flags);
const void *stack_map(struct stack *s, uint64_t off, uint64_t len);
int stack_prefetch(struct stack *s, uint64_t off, uint64_t len);
/* 1 if the 4 KiB-aligned range [off, off+len) reads as zeros by the
 * source's own report (no read needed), else 0. */
int stack_is_zero(const struct stack *s, uint64_t off, uint64_t len);

/* What data the source serves (its identity(), else plugin and size). */
void stack_identity(const struct stack *s, char *buf, size_t len);

int stack_open_session(struct stack *s, const struct ufk_session_info *info);
void stack_close_session(struct stack *s, const struct ufk_session_info *info);

/* For host->source_open: a stack built from a group of a plugin's own
 * settings, started, returned as its top's ufk_next. */
struct ufk_config;
struct ufk_next *stack_open_nested(const struct ufk_config *parent,
                                   const config_setting_t *group,
                                   const char *const *vars);
void stack_close_nested(struct ufk_next *n);

#endif

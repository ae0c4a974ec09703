/* --check-config: a configuration file checked as the daemon would load
 * it, every plugin's settings included, without starting anything. */
#ifndef UFFDKIT_CORE_CHECKCONF_H
#define UFFDKIT_CORE_CHECKCONF_H

#include "config.h"

/* Checks conf (plugins looked up in dir): each listener's stack, and each
 * template's, expanded with every variable set to a valid placeholder;
 * errors are logged with the file and line of the setting at fault.
 * Frees conf.  Returns 0 if all is well, else 1. */
int check_config(struct daemon_conf *conf, const char *dir);

#endif

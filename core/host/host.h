/* The services table handed to plugins (struct ufk_host): logging, errors,
 * settings, nested sources, counters, a clock and data files.  The pieces
 * live in hosterror.c, pconf.c, stack.c and pinned.c; this file only
 * assembles them. */
#ifndef UFFDKIT_CORE_HOST_H
#define UFFDKIT_CORE_HOST_H

#include <uffdkit/plugin.h>

const struct ufk_host *host_table(void);

#endif

/* `uffdkit ctl`: the client of the control socket (see control.h and
 * uffdkit-ctl(8)). */
#ifndef UFFDKIT_CORE_CTL_H
#define UFFDKIT_CORE_CTL_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Exit statuses of `uffdkit ctl`. */
#define CTL_OK 0
#define CTL_REFUSED 1   /* the daemon answered with an error */
#define CTL_USAGE 2     /* bad command line */
#define CTL_NO_DAEMON 3 /* cannot reach the daemon, or no answer */

/* argv[1] is "ctl".  Returns the exit status. */
int ctl_main(int argc, char **argv);

/* Prints a successful response to cmd ("list", "stats", ...) as aligned
 * tables.  Returns 0, or -1 if the response lacks what cmd returns. */
int ctl_print(FILE *f, const char *cmd, const cJSON *resp);

#endif

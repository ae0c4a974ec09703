/* The daemon's clocks, in nanoseconds: every interval, deadline and
 * timeout uses clock_mono_ns(); clock_unix_ns() only dates what a person or
 * another host reads (log lines, figures). */
#ifndef UFFDKIT_CORE_CLOCK_H
#define UFFDKIT_CORE_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_unix_ns(void);

#endif

/* Warming a session's memory ahead of its guest: recording its working
 * set, replaying it, and background fill, per the listener's settings.
 *
 * Recording keeps the order in which the guest first touched each page and
 * writes it (wsfile.h) when the session ends or record_for runs out.
 * Replay plans the set into source ranges (wplan.h), fetches them in
 * first-touch order on several threads through the stack's prefetch and
 * read, and installs the listed pages (UFFDIO_COPY_MODE_DONTWAKE, then one
 * wake per run), skipping any page already present, in flight or removed;
 * demand faults keep going on the fault loop meanwhile.  Background fill then
 * installs the rest. */
#ifndef UFFDKIT_CORE_WARM_H
#define UFFDKIT_CORE_WARM_H

#include <stdint.h>

struct session;
struct warm;

/* Starts what the listener's settings ask for; NULL if nothing. */
struct warm *warm_start(struct session *s);
/* The fault loop reports each first touch (source offset). */
void warm_touch(struct warm *w, uint64_t off);
/* While recording, the fault loop keeps fault-around off: pages brought in
 * around a fault would go unrecorded. */
int warm_recording(const struct warm *w);
/* Stops the thread and writes any recording. */
void warm_stop(struct warm *w);

#endif

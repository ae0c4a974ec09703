/* The fault loop of one session: every uffd event Firecracker can send,
 * handled explicitly.  Runs on the session's thread until the VM ends or
 * the session's stopfd is written; faults it cannot serve without blocking
 * go to the listener's pool. */
#ifndef UFFDKIT_CORE_FAULT_H
#define UFFDKIT_CORE_FAULT_H

#include "session.h"

void fault_loop(struct session *s);

#endif

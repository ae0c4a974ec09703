/* When a fault loop busy-polls for the next fault and when it sleeps in
 * poll(2).  Polling saves the wake-up a sleeping loop pays per fault, but
 * holds a CPU while it looks: it pays only while faults come sooner than
 * the window ends and a CPU is free to look (spin in uffdkit.conf(5)). */
#ifndef UFFDKIT_WORKER_BUSYPOLL_H
#define UFFDKIT_WORKER_BUSYPOLL_H

#include <stdint.h>

/* What one session's loop learnt about its faults; zeroed at its start. */
struct busypoll {
  int adaptive;    /* spin = "auto": back off and yield to busy CPUs */
  uint32_t misses; /* windows in a row that ended without a fault */
  uint32_t skip;   /* batches to sleep after before looking again */
  /* for the debug line at the session's end */
  uint64_t caught, missed, slept_busy, slept_backoff, yields;
};

/* After a batch: how long to look for the next fault, 0 to sleep now
 * (window: the configured one). */
uint64_t busypoll_begin(struct busypoll *b, uint64_t window);
/* Every turn while looking: 0 to stop (the CPUs are all busy). */
int busypoll_go_on(struct busypoll *b, uint64_t now_ns);
/* Each turn of a look, before looking: lets a vCPU sharing this CPU run
 * into its next fault. */
void busypoll_yield(struct busypoll *b);
/* The look ended with a fault (caught) or with the window (missed). */
void busypoll_caught(struct busypoll *b);
void busypoll_missed(struct busypoll *b);
/* Logs what the session's polling did (debug). */
void busypoll_log(const struct busypoll *b, uint64_t session_id,
                  const char *listener);

#endif

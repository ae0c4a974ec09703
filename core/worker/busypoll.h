/* When a fault loop busy-polls for the next fault and when it sleeps in
 * poll(2).  Polling saves the wake-up a sleeping loop pays per fault, but
 * holds a CPU while it looks: it pays only while faults come sooner than
 * the window ends and a CPU is free to look (spin in uffdkit.conf(5)). */
#ifndef UFFDKIT_WORKER_BUSYPOLL_H
#define UFFDKIT_WORKER_BUSYPOLL_H

#include <stdint.h>

/* What one session's loop learnt about its faults; zeroed at its start. */
struct busypoll {
  int adaptive;     /* spin = "auto": back off and yield to busy CPUs */
  uint32_t misses;  /* windows in a row that ended without a fault */
  uint32_t skip;    /* batches to sleep after before looking again */
  uint64_t nap_ns;  /* from a batch served to the next fault, less a lead */
  uint64_t late_ns; /* how late a nap's timer wakes the thread */
  /* for the debug line at the session's end */
  uint64_t caught, missed, slept_busy, slept_backoff, yields, naps, nap_woken;
};

/* After a batch: how long to look for the next fault, 0 to sleep now
 * (window: the configured one). */
uint64_t busypoll_begin(struct busypoll *b, uint64_t window);
/* Every turn while looking: 0 to stop (the CPUs are all busy). */
int busypoll_go_on(struct busypoll *b, uint64_t now_ns);
/* Each turn of a look, before looking: lets a vCPU sharing this CPU run
 * into its next fault. */
void busypoll_yield(struct busypoll *b);
/* How long to sleep before looking for the next fault, 0 to look now.
 * Where a guest works long between faults (reading a fresh 2 MiB page
 * takes about as long as copying it), looking all that time costs as much
 * CPU as the copies: a nap that ends just before the fault keeps the
 * polling's latency at the cost of one timer wake-up. */
uint64_t busypoll_nap(struct busypoll *b);
/* A nap of asked_ns that no fault ended took slept_ns. */
void busypoll_slept(struct busypoll *b, uint64_t asked_ns, uint64_t slept_ns);
/* The next fault came gap_ns after the last batch was served, during a
 * nap (woken) or while looking. */
void busypoll_gap(struct busypoll *b, uint64_t gap_ns, int woken);
/* The look ended with a fault (caught) or with the window (missed). */
void busypoll_caught(struct busypoll *b);
void busypoll_missed(struct busypoll *b);
/* Logs what the session's polling did (debug). */
void busypoll_log(const struct busypoll *b, uint64_t session_id,
                  const char *listener);

#endif

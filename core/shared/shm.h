/* Memory shared between the supervisor and the worker.
 *
 * Each session has one memfd (struct session_shm followed by two bitmaps).
 * The supervisor creates it and keeps it for the session's life, so when a
 * worker dies the next one finds which pages were installed or removed and
 * any uffd messages it had read but not yet applied.  Each listener has one
 * memfd of counters (struct listener_stats) that ctl and metrics read. */
#ifndef UFFDKIT_CORE_SHM_H
#define UFFDKIT_CORE_SHM_H

#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SESSION_SHM_MAGIC 0x75666b5353484d33ull /* "ufkSSHM3" */
#define SHM_EVBUF 256  /* uffd messages read per wake-up */
#define LAT_BUCKETS 16 /* fault service time: < 2^(i+2) us, last: rest */

struct shm_region {
  uint64_t base;
  uint64_t size;
  uint64_t offset;
  uint64_t first_page; /* index of its first page in the bitmaps */
};

/* Counters of one session, written by the worker with relaxed atomics. */
struct session_counters {
  uint64_t faults;       /* fault messages read */
  uint64_t pages_copied; /* pages installed from the source */
  uint64_t zero_pages;   /* pages installed as zeros */
  uint64_t bytes_copied;
  uint64_t removes; /* REMOVE events */
  uint64_t removed_pages;
  uint64_t stale_faults; /* faults on pages already installed */
  uint64_t eagain;
  uint64_t source_errors;
  uint64_t prefetched_pages;
  uint64_t lat_count;
  uint64_t lat_sum_ns;
  uint64_t lat_buckets[LAT_BUCKETS];
  uint64_t vms_killed; /* VMs killed by on_source_error = "kill" */
};

/* What the restore did, for ctl and the log line at its end; written by
 * the worker with relaxed atomics (core/figures.h). */
struct session_figures {
  uint64_t first_fault_unix_ns;  /* first fault served; 0: none yet */
  uint64_t replay_start_unix_ns; /* 0: no working-set replay */
  uint64_t replay_end_unix_ns;   /* 0: not over */
  uint64_t replay_listed;        /* pages in the working set */
  uint64_t replay_installed;     /* pages the replay installed */
};

struct session_shm {
  uint64_t magic;
  uint64_t id;
  char listener[64];
  int32_t pid;
  uint32_t uid;
  uint32_t page_size;
  uint32_t nregions;
  uint32_t keeps_socket; /* Firecracker >= 1.12: hang-up means it exited */
  uint32_t gen;          /* configuration generation serving it */
  uint64_t npages;       /* bits in each bitmap */
  uint64_t present_off;  /* byte offsets of the bitmaps in the memfd */
  uint64_t removed_off;
  uint64_t started_unix_ns;
  /* identity() of the source the session started on, written by its first
   * worker: a later worker serving other data must not serve it. */
  char source_identity[256];
  struct shm_region regions[CONF_MAX_REGIONS];
  struct session_counters counters;
  /* The worker reads uffd messages straight into evbuf and zeroes each
   * after applying it, so a REMOVE read by a worker that then died is still
   * applied by the next one. */
  struct uffd_msg evbuf[SHM_EVBUF];
  struct session_figures fig;
};

/* Bytes of the memfd for a session of npages pages. */
/* A counter another process or thread may be writing. */
static inline uint64_t shm_load(const uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Adds every counter of from to to, reading and adding with relaxed
 * atomics: from may be a live session's, to may be shared. */
void session_counters_add(struct session_counters *to,
                          const struct session_counters *from);

size_t session_shm_size(uint64_t npages);
/* Creates and maps the memfd; returns the fd or -1. */
int session_shm_create(uint64_t npages, struct session_shm **out, size_t *len);
/* Maps an existing one, checking its magic and size; NULL on error. */
struct session_shm *session_shm_map(int fd, size_t *len);

#define LISTENER_COUNTERS 64

struct plugin_counter {
  char name[48];
  char instance[80];
  char help[120];
  uint64_t value;
};

struct listener_stats {
  /* written by the supervisor */
  uint64_t sessions_total;
  uint64_t sessions_live;
  uint64_t refused_peers;
  uint64_t handshake_errors;
  uint64_t worker_restarts;
  /* totals of ended sessions, added by the supervisor */
  struct session_counters ended;
  /* written by the worker: counters of the plugin instances */
  uint32_t ncounters;
  uint32_t reserved;
  struct plugin_counter counters[LISTENER_COUNTERS];
};

int listener_stats_create(struct listener_stats **out);
struct listener_stats *listener_stats_map(int fd);

#endif

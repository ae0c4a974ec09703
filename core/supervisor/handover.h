/* Handing descriptors to the next supervisor: across our own re-exec (a
 * zero-downtime upgrade) and through systemd's file-descriptor store (a
 * restart).  Each descriptor travels with a name saying what it is:
 *   L-<listener>  listening socket     S-<listener>  its counters (memfd)
 *   T-<gen>       a generation's config text (memfd)
 *   F-<gen>-<n>   a data file pinned to the generation
 *   N-<gen>-<n>   its path and open flags (memfd)
 *   R-<id>        a per-restore listener's config text (memfd)
 *   D-<id>-<n>    a data file pinned to it   K-<id>-<n>  its path and flags
 *   U-<id> uffd   M-<id> session state   C-<id> connection   P-<id> pidfd
 * (no ':' in names: systemd separates $LISTEN_FDNAMES with it). */
#ifndef UFFDKIT_CORE_HANDOVER_H
#define UFFDKIT_CORE_HANDOVER_H

struct handed {
  int fd;
  char name[96];
};

/* The descriptors handed to this process, from $LISTEN_FDS (systemd) and
 * $UFFDKIT_FDS (our re-exec); the variables are removed.  Returns how
 * many (*out malloc'd), or -1 when the variables are malformed. */
int handover_collect(struct handed **out);

/* The descriptor handed over under name, taken out of h (its fd set to
 * -1), or -1 if none is. */
int handover_take(struct handed *h, int n, const char *name);

/* Re-executes the binary open in exe_fd with argv keeping the n
 * descriptors open under their names.  Returns only if exec failed (with
 * every descriptor as it was). */
int handover_exec(int exe_fd, char *const *argv, const struct handed *h, int n);

#endif

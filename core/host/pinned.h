/* The data files a generation's sources open, kept for the generation's
 * whole life: the first worker of a generation reports every file it opens
 * through the host's open_file() to the supervisor, which keeps the
 * descriptor (and hands it over at an upgrade); every later worker of that
 * generation gets the same descriptors before it builds its sources and is
 * given a copy instead of opening the path again.  So a file replaced by
 * rename changes nothing for the generation's sessions: they keep the inode
 * they started on.
 *
 * A per-restore listener's files are its own (owner: its name), reported
 * with its name so the supervisor keeps them with the restore, and
 * dropped when the restore is removed: a daemon serving many distinct
 * snapshots does not hold their files until its next reload. */
#ifndef UFFDKIT_CORE_PINNED_H
#define UFFDKIT_CORE_PINNED_H

/* The host's open_file(): a duplicate of the descriptor pinned for (path,
 * flags), else open(2) of path; a read-only regular file newly opened is
 * pinned and, once pinned_report() was called, reported.  Returns a
 * close-on-exec descriptor, or -1 with errno. */
int pinned_open(const char *path, int flags);

/* Adopts a descriptor pinned by an earlier worker: fd and meta, a memfd
 * from pinned_meta().  Takes both (closed on error).  Returns 0 or -1. */
int pinned_adopt(int fd, int meta);

/* pinned_adopt() for the files of owner ("" the generation's). */
int pinned_adopt_for(const char *owner, int fd, int meta);

/* The files this thread opens from now on belong to owner: the
 * per-restore listener whose source it builds, or NULL/"" for the
 * generation.  Only pins of the same owner are shared. */
void pinned_scope(const char *owner);

/* Forgets (closes) every pinned descriptor of owner. */
void pinned_drop(const char *owner);

/* From now on, files newly pinned are sent to this ipc socket. */
void pinned_report(int ipc);

/* Forgets every pinned descriptor (closing them). */
void pinned_clear(void);

/* A memfd naming (path, flags), or -1. */
int pinned_meta(const char *path, int flags);

/* Reads a memfd made by pinned_meta().  Returns 0 or -1. */
int pinned_meta_read(int meta, char *path, int len, int *flags);

#endif

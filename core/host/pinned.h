/* The data files of each configuration generation, kept for the
 * generation's whole life.  A pin set belongs to one generation: every
 * read-only regular file its sources open through the host's open_file()
 * is kept (and reported to the supervisor, which keeps the descriptor and
 * hands it over at an upgrade); every later build for that generation
 * gets the same descriptors before it builds its sources and is given a
 * copy instead of opening the path again.  So a file replaced by rename
 * changes nothing for the generation's sessions: they keep the inode they
 * started on.
 *
 * The set open_file() uses is the calling thread's scope (pinned_scope),
 * set while a stack is built; a file opened outside a scope (a source
 * opening one lazily, on a pool thread) is opened by path and not
 * pinned.  The scope may also record every file opened (a pin record), so
 * that a stack built for one generation can later be checked against
 * another: it may be shared only if each of its files is the one that
 * generation would get.
 *
 * A per-restore listener's files are its own: its pin set is owned by the
 * restore (pinset_new_for), reported with its name so the supervisor keeps
 * them with the restore, and freed when the restore is removed, so a
 * daemon serving many distinct snapshots does not hold their files until
 * its next reload. */
#ifndef UFFDKIT_CORE_PINNED_H
#define UFFDKIT_CORE_PINNED_H

#include <stdint.h>

struct pinset;

/* A file a stack opened: its path and flags, and a descriptor kept open
 * (so its identity can be compared, and given to another generation). */
struct pinfile {
  char *path;
  int flags;
  int fd;
};

struct pinrec {
  struct pinfile *f;
  int n;
};

/* The pins of generation gen; files newly pinned are reported on ipc as
 * IPC_PIN with the generation's id (ipc < 0: not reported).  NULL when
 * out of memory. */
struct pinset *pinset_new(int gen, int ipc);
/* The pins of the per-restore listener owner (reported as IPC_PIN named
 * owner, with the restore's serial as id). */
struct pinset *pinset_new_for(const char *owner, uint32_t serial, int ipc);
/* Closes every pinned descriptor. */
void pinset_free(struct pinset *s);
/* Adopts a descriptor pinned by an earlier worker: fd and meta, a memfd
 * from pinned_meta().  Takes both (closed on error).  Returns 0 or -1. */
int pinset_adopt(struct pinset *s, int fd, int meta);

/* From now on open_file() on this thread uses set (NULL: none) and
 * records each file it returns in rec (NULL: not recorded). */
void pinned_scope(struct pinset *set, struct pinrec *rec);

/* The host's open_file(): a duplicate of the descriptor pinned for (path,
 * flags) in the thread's set, else open(2) of path; a read-only regular
 * file newly opened is pinned and reported.  Returns a close-on-exec
 * descriptor, or -1 with errno. */
int pinned_open(const char *path, int flags);

/* 1 if every file of rec is the one set gives for its path and flags (its
 * pin, else the file now at the path): same device, inode, size and
 * modification time; else 0. */
int pinrec_same(const struct pinrec *rec, struct pinset *set);
/* Pins rec's files in set where set has none for their path and flags
 * (reported as new pins). */
void pinrec_share(const struct pinrec *rec, struct pinset *set);
void pinrec_clear(struct pinrec *rec);

/* A memfd naming (path, flags), or -1. */
int pinned_meta(const char *path, int flags);

/* Reads a memfd made by pinned_meta().  Returns 0 or -1. */
int pinned_meta_read(int meta, char *path, int len, int *flags);

#endif

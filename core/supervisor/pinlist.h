/* The data files an owner's sources opened (see pinned.h), kept by the
 * supervisor for the owner's life: received from the worker that opened
 * them, given to every later worker before it builds the owner again, put
 * in systemd's fd store and handed over at an upgrade under two names
 * each, <file>-<prefix>-<n> (the file) and <meta>-<prefix>-<n> (its path
 * and flags, a memfd), and closed with the owner.  Owners: a configuration
 * generation (F-/N-<gen>-<n>) and a per-restore listener (D-/K-<id>-<n>). */
#ifndef UFFDKIT_CORE_PINLIST_H
#define UFFDKIT_CORE_PINLIST_H

#include "handover.h"
#include "ipc.h"

struct pin {
  int fd;   /* the file, as the owner's first worker opened it */
  int meta; /* its path and flags */
};

struct pinlist {
  char file, meta; /* the letters of its descriptors' names */
  char prefix[72]; /* the owner's part of the names */
  char what[96];   /* the owner, in log lines */
  struct pin *pins;
  int n;
};

/* An empty list whose names are FILE-PREFIX-n and META-PREFIX-n; what
 * names its owner in messages ("configuration generation 3"). */
void pinlist_init(struct pinlist *l, char file, char meta, const char *prefix,
                  const char *what);
/* Takes fd and meta (a pin lacking either, or that finds no memory, is
 * closed and left to the next worker to open by path): 0, or -1. */
int pinlist_add(struct pinlist *l, int fd, int meta);
/* Sends each pin to the worker on ipc as m (type IPC_PIN) with its two
 * descriptors. */
void pinlist_send(const struct pinlist *l, int ipc, const struct ipc_msg *m);
/* The descriptor names of pin i: file and meta, 96 bytes each. */
void pinlist_names(const struct pinlist *l, int i, char file[96],
                   char meta[96]);
/* Takes the list's pins, in their order, from the n descriptors handed
 * over (their fd set to -1). */
void pinlist_adopt(struct pinlist *l, struct handed *h, int n);
/* Closes every pin and takes it out of the fd store. */
void pinlist_free(struct pinlist *l);

#endif

/* Messages between the supervisor and the worker over a SOCK_SEQPACKET
 * socketpair, each with up to IPC_MAX_FDS descriptors. */
#ifndef UFFDKIT_CORE_IPC_H
#define UFFDKIT_CORE_IPC_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define IPC_MAX_FDS 4

/* One worker serves every live configuration generation; messages about
 * a generation carry its number (id, or code for IPC_SESSION). */
enum ipc_type {
  IPC_LISTENER = 1, /* sup → worker: gen id, name, fds {listener stats} */
  IPC_SESSION = 2,  /* sup → worker: id, code = gen, name,
                       fds {conn, uffd, pidfd, shm} */
  IPC_READY = 3,    /* worker → sup: generation id's sources started */
  IPC_END = 4,      /* worker → sup: session id ended, code = reason */
  IPC_PIN = 5,      /* both ways: gen id (a restore's serial), fds {a
                       pinned data file, its path (memfd)}; name: its
                       per-restore listener, "" the generation's */
  /* Per-restore listeners (docs/control-protocol.md, serve): */
  /* code: the restore's serial, in each of these four. */
  IPC_RESTORE = 6,       /* sup → worker: gen id, name, fds {stats, config
                            text} */
  IPC_RESTORE_OK = 7,    /* worker → sup: name's source started */
  IPC_RESTORE_ERR = 8,   /* worker → sup: name, fds {why (memfd)} */
  IPC_UNRESTORE = 9,     /* sup → worker: name is gone */
  IPC_SOURCE_ERROR = 10, /* worker → sup: session id's first source error,
                            fds {why (memfd)} */
  /* Generations (after its IPC_PIN and IPC_LISTENER messages): */
  IPC_GEN = 11,     /* sup → worker: id, fds {config text, file name} */
  IPC_GEN_ERR = 12, /* worker → sup: id could not start, fds {why} */
  IPC_UNGEN = 13,   /* sup → worker: generation id is retired */
};

enum ipc_end_reason {
  END_EXITED = 0,   /* Firecracker exited or hung up */
  END_REFUSED = 1,  /* the source refused the session */
  END_FAILED = 2,   /* a source error under the kill policy */
  END_SHUTDOWN = 3, /* the worker is stopping */
};

struct ipc_msg {
  uint32_t type;
  uint32_t fdmask; /* bit i: fds[i] is present */
  uint64_t id;
  int32_t code;
  uint32_t reserved;
  char name[64];
};

/* Sends mh with fds[0..n) attached (SCM_RIGHTS), retrying when
 * interrupted: what sendmsg returns.  At most the kernel's SCM_MAX_FD. */
#define IPC_SENDMSG_MAX_FDS 253
ssize_t ipc_sendmsg_fds(int sock, struct msghdr *mh, const int *fds, int n);

/* fds[i] < 0 are not sent.  Returns 0 or -1 with errno. */
int ipc_send(int sock, const struct ipc_msg *m, const int *fds, int nfds);
/* Receives one message; fds[i] = -1 where absent.  Returns 1, 0 on EOF, or
 * -1 with errno (EAGAIN when nothing is pending). */
int ipc_recv(int sock, struct ipc_msg *m, int fds[IPC_MAX_FDS]);

/* Sends m with why (unless NULL) in a memfd as its one descriptor: how the
 * worker says why something failed.  0 or -1 with errno. */
int ipc_send_why(int sock, const struct ipc_msg *m, const char *why);
/* The text of a descriptor ipc_send_why sent, in buf (len bytes), or dflt
 * when none came.  Returns buf. */
const char *ipc_why(int fd, char *buf, size_t len, const char *dflt);

#endif

/* The service manager's notification protocol (sd_notify(3)) and the
 * descriptors it hands over at start (sd_listen_fds(3)), without libsystemd.
 *
 * A notification is a set of VAR=VALUE lines sent as one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET: a path, or an abstract name when
 * it starts with '@'.  Without $NOTIFY_SOCKET every notify_* call does
 * nothing and returns 0, so the daemon behaves the same outside systemd.
 *
 * Each notify_* returns 1 when the message was sent, 0 when there is no
 * $NOTIFY_SOCKET, and -1 with errno set when sending failed or an argument
 * is invalid.  The calls are thread-safe: each opens its own socket. */
#ifndef UFFDKIT_CORE_NOTIFY_H
#define UFFDKIT_CORE_NOTIFY_H

#include <stdint.h>

/* Sends msg (newline-separated VAR=VALUE lines) with nfds descriptors
 * (0 to NOTIFY_MAX_FDS) attached as SCM_RIGHTS. */
#define NOTIFY_MAX_FDS 253
int notify_send(const char *msg, const int *fds, int nfds);

/* READY=1: startup is complete; systemd reports the unit started. */
int notify_ready(void);
/* RELOADING=1: a reload began; send notify_ready() when it is done. */
int notify_reloading(void);
/* STOPPING=1: shutdown began. */
int notify_stopping(void);
/* STATUS=text, shown by systemctl status.  Newlines become spaces. */
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* WATCHDOG=1: the keep-alive ping. */
int notify_watchdog(void);
/* How often systemd expects a ping, in microseconds ($WATCHDOG_USEC), or 0
 * when no watchdog applies to this process: unset, malformed, or
 * $WATCHDOG_PID naming another process.  Ping at half this interval. */
uint64_t notify_watchdog_interval_us(void);

/* FDSTORE=1 with FDNAME=name: systemd keeps n descriptors (1 to
 * NOTIFY_MAX_FDS) while the service restarts and passes them back in
 * $LISTEN_FDS.  name is 1-255 printable ASCII characters without ':'.  By
 * default systemd drops a stored descriptor by itself when it reports
 * POLLHUP or POLLERR. */
int notify_fdstore(const int *fds, int n, const char *name);
/* FDSTOREREMOVE=1 with FDNAME=name: closes every stored descriptor of that
 * name. */
int notify_fdstore_remove(const char *name);

/* The first descriptor passed by the service manager. */
#define LISTEN_FDS_START 3

/* Descriptors passed at start (socket activation, or the fd store after a
 * restart): $LISTEN_FDS of them, numbered LISTEN_FDS_START onwards, if
 * $LISTEN_PID is this process.  Each is made close-on-exec.  If names is not
 * NULL, *names receives a NULL-terminated array of their names from
 * $LISTEN_FDNAMES ("unknown" for each when it is unset), or NULL when there
 * are none; free it with listen_fds_free_names().  With unset_env the three
 * variables are removed from the environment, so child processes do not see
 * them. Returns the number of descriptors (0 when none were passed to this
 * process), or -1 with errno EINVAL when the variables are malformed or
 * EBADF when a passed descriptor is not open. */
int listen_fds_with_names(int unset_env, char ***names);
void listen_fds_free_names(char **names);

#endif

/* Why the last plugin callback on this thread failed: what plugins report
 * through host->error, kept per thread for the daemon to log. */
#ifndef UFFDKIT_CORE_HOSTERROR_H
#define UFFDKIT_CORE_HOSTERROR_H

/* host->error: records the message and errnum (0: none applies) and sets
 * errno to errnum, or EIO, for a layer above to read. */
void host_error(int errnum, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last error recorded on this thread, or a note that none was. */
const char *host_last_error(void);
/* Its errnum, EIO if it had none. */
int host_last_errno(void);
void host_clear_error(void);

#endif

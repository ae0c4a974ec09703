/* Installing pages into a session's guest memory (UFFDIO_COPY, ZEROPAGE,
 * WAKE, POISON) and the on_source_error policy when a page cannot be had.
 * The fault loop, the pool and the warmer all install through here. */
#ifndef UFFDKIT_CORE_INSTALL_H
#define UFFDKIT_CORE_INSTALL_H

#include <stdint.h>

#include "session.h"

enum install_result {
  INSTALL_DONE,       /* installed, or present already */
  INSTALL_RETRY,      /* a REMOVE is pending (EAGAIN): read events, retry */
  INSTALL_GONE,       /* the VM's memory is gone */
  INSTALL_UNREADABLE, /* our source bytes could not be read (EFAULT): the
                       * caller applies on_source_error */
};

enum install_result install_copy(struct session *s, uint64_t dst,
                                 const void *src, uint64_t len);
enum install_result install_zero(struct session *s, uint64_t dst, uint64_t len);
/* The same with a mode (UFFDIO_COPY_MODE_DONTWAKE, ..._ZEROPAGE_MODE_...),
 * setting *got to the bytes this call installed: fewer than len when a
 * page of the run was installed by someone else first. */
enum install_result install_copy_mode(struct session *s, uint64_t dst,
                                      const void *src, uint64_t len,
                                      uint64_t mode, uint64_t *got);
enum install_result install_zero_mode(struct session *s, uint64_t dst,
                                      uint64_t len, uint64_t mode,
                                      uint64_t *got);
/* Wakes the vCPUs waiting on [addr, addr + len); nothing if len is 0. */
void install_wake(struct session *s, uint64_t addr, uint64_t len);

/* Applies on_source_error for the page at addr, source offset off, whose
 * bytes the source could not deliver (logged with the host's last error). */
void install_failed(struct session *s, uint64_t addr, uint64_t off);
/* Applies on_source_error for the page at addr of a session whose source
 * changed under it (logged once, by install_pin_source). */
void install_refuse(struct session *s, uint64_t addr);
/* Records the source's identity in the session's shared state, or, when a
 * worker takes the session over, compares it: a source serving other data
 * than the session started on sets source_changed (logged once, and the
 * VM killed under the kill policy); every fault then goes to
 * on_source_error without reading. */
void install_pin_source(struct session *s);

/* Called with the reason of a session's first source error, on the thread
 * that met it, before its policy is applied (the worker tells the
 * supervisor, whose watchers learn it at once). */
typedef void (*install_error_fn)(struct session *s, const char *why);
void install_on_error(install_error_fn fn);

#endif

/* Helpers for the sources that serve plain files (mmap, file, diff). */
#ifndef UFFDKIT_COMMON_RAWFILE_H
#define UFFDKIT_COMMON_RAWFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uffdkit/plugin.h>

/* Calls fn(opaque, off, len, UFK_EXTENT_ZERO) for each hole inside
 * [off, off+len) of fd, in order.  Returns 0, or -1 with errno set. */
int ufk_file_holes(int fd, uint64_t off, uint64_t len, ufk_extent_fn fn,
                   void *opaque);

/* Reads exactly len bytes at off of fd (named path in the message), with
 * pread rather than from a mapping: a file truncated under us is an error
 * reported through host, never a SIGBUS that kills the worker.  Returns 0,
 * or -1 with errno set (EIO when the file ended early). */
int ufk_file_read(const struct ufk_host *host, int fd, const char *path,
                  void *buf, uint64_t len, uint64_t off);

/* Opens a file the source serves through host->open_file (pinned to the
 * configuration generation: see uffdkit-plugin(3)) when the daemon has it,
 * else with open(2); O_CLOEXEC is added.  Returns a descriptor, or -1 with
 * errno set. */
int ufk_open_data(const struct ufk_host *host, const char *path, int flags);

/* Opens the raw memory file at path (ufk_open_data with flags) and reads
 * its status into *st: it must be a non-empty regular file.  Returns a
 * descriptor, or -1 with the reason given to host->error. */
int ufk_open_raw(const struct ufk_host *host, const char *path, int flags,
                 struct stat *st);

/* The identity of a file's content as far as the kernel can tell: device,
 * inode, size and modification time. */
void ufk_file_identity(const struct stat *st, char *buf, size_t len);

#endif

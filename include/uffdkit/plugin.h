/* uffdkit plugin ABI: the only header a memory-source plugin needs.
 *
 * A plugin is a shared object exporting one symbol, uffdkit_plugin_entry,
 * made with UFFDKIT_PLUGIN().  It returns a struct ufk_plugin describing the
 * plugin and its callbacks.  The daemon passes its services in as a table
 * (struct ufk_host) at load time, so a plugin links against nothing of the
 * daemon and can be unit-tested with a fake table.
 *
 * Stability promise (see uffdkit-plugin(3)):
 *  - UFK_ABI_MAJOR changes only when an existing field changes meaning; the
 *    daemon refuses a plugin of another major.
 *  - New callbacks and fields are only ever appended, raising UFK_ABI_MINOR.
 *    The daemon copies struct_size bytes of the plugin's struct and treats
 *    everything past them as absent, so a plugin built against an older
 *    minor keeps loading.  A plugin must check host->size (or abi_minor)
 *    before using a host service newer than the minor it needs.
 */
#ifndef UFFDKIT_PLUGIN_H
#define UFFDKIT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UFK_ABI_MAJOR 1
#define UFK_ABI_MINOR 3

/* Log levels for host->log. */
enum ufk_log_level {
  UFK_LOG_ERROR = 0,
  UFK_LOG_WARN = 1,
  UFK_LOG_INFO = 2,
  UFK_LOG_DEBUG = 3,
};

/* Types of settings.  Values may be written natively in the config file or,
 * from the command line, as strings that parse to the type.  SIZE takes
 * suffixes K, M, G, T (powers of 1024); DURATION takes ns, us, ms, s, m, h. */
enum ufk_type {
  UFK_T_STRING = 1,
  UFK_T_INT = 2,
  UFK_T_BOOL = 3,
  UFK_T_SIZE = 4,
  UFK_T_DURATION = 5,
  UFK_T_STRING_LIST = 6,
  UFK_T_GROUP = 7, /* a nested group, e.g. a source to read through */
};

#define UFK_PARAM_REQUIRED (1u << 0)
#define UFK_PARAM_SECRET (1u << 1) /* never logged or shown by ctl */

/* One setting a plugin accepts.  The daemon rejects keys not in this table,
 * checks types, applies defaults and prints the table with --describe. */
struct ufk_param {
  const char *key;
  uint32_t type;             /* enum ufk_type */
  uint32_t flags;            /* UFK_PARAM_* */
  const char *default_value; /* as it would be written on the command line */
  const char *help;
};

/* Plugin flags (struct ufk_plugin.flags and struct ufk_caps.flags). */
#define UFK_PLUGIN_LAYER (1u << 0) /* create() receives the stack below */
/* Reads are answered from memory or the page cache.  The daemon calls them on
 * the thread that read the fault, with no hand-off.  Leave it clear for any
 * source that may wait on a network or a slow device. */
#define UFK_PLUGIN_FAST (1u << 1)
/* read() honours UFK_READ_NOWAIT: it answers from memory or fails with
 * EWOULDBLOCK, so the daemon can try it inline before handing off. */
#define UFK_PLUGIN_NOWAIT (1u << 2)

/* How many data calls (read, map, release, extents, prefetch, identity) the
 * daemon may make into one instance at once.  Neither model covers open and
 * close: they may run beside data calls and beside each other.  The other
 * callbacks run with no other callback of the instance running. */
enum ufk_thread_model {
  UFK_THREAD_SERIAL = 0,   /* one data call at a time per instance */
  UFK_THREAD_PARALLEL = 1, /* any number, up to ufk_caps.max_concurrency */
};

/* Flags of a read. */
#define UFK_READ_FAULT (1u << 0)    /* a vCPU is blocked on this read */
#define UFK_READ_NOWAIT (1u << 1)   /* see UFK_PLUGIN_NOWAIT */
#define UFK_READ_PREFETCH (1u << 2) /* background work: yield to faults */

/* Extent kinds reported by extents(). */
#define UFK_EXTENT_ZERO 1u /* reads as zeros: installed without reading */

/* Called by extents() for each range found.  Returns 0 to go on, or -1 to
 * stop: extents() then returns -1 at once, without calling host->error (the
 * caller of extents() knows why it stopped). */
typedef int (*ufk_extent_fn)(void *opaque, uint64_t off, uint64_t len,
                             uint32_t kind);

struct ufk_config; /* opaque view of one instance's settings */

/* A guest memory region of a restored VM, as Firecracker sent it. */
struct ufk_region {
  uint64_t base;   /* start in Firecracker's address space */
  uint64_t size;   /* bytes */
  uint64_t offset; /* byte offset in the memory source */
};

/* One restored VM, given to open(). */
struct ufk_session_info {
  uint64_t id;
  int32_t pid; /* Firecracker's pid (SO_PEERCRED) */
  uint32_t page_size;
  uint32_t nregions;
  uint32_t reserved;
  const struct ufk_region *regions;
  const char *listener; /* name of the listener it connected to */
};

/* What an instance can do, filled by caps() after start().  Zero-initialised
 * by the daemon; a plugin without caps() gets flags = plugin->flags. */
struct ufk_caps {
  uint32_t flags;           /* UFK_PLUGIN_FAST, UFK_PLUGIN_NOWAIT */
  uint32_t max_concurrency; /* 0: no limit beyond the thread model */
  uint64_t max_io;          /* largest read it takes; 0: any */
};

/* The source below a layer, or a source opened through host->source_open.
 * Calls through it honour the thread model and limits of the instance
 * behind it, on the caller's thread; they mean what the same callbacks of
 * struct ufk_plugin mean, and every member is set but prefetch.  When a call
 * fails, errno holds the errno the level below reported with host->error (EIO
 * if it gave none), so a layer can tell transient errors (EIO, ETIMEDOUT,
 * ECONNRESET, EAGAIN...) from permanent ones. */
struct ufk_next {
  uint32_t size;  /* sizeof(struct ufk_next) the daemon was built with */
  uint32_t flags; /* caps flags of the stack below */
  void *handle;
  int64_t (*get_size)(void *handle);
  int (*read)(void *handle, void *buf, uint64_t len, uint64_t off,
              uint32_t flags);
  /* NULL result: not mappable here, use read().  A pointer returned is
   * handed back through release (when size covers it) once used. */
  const void *(*map)(void *handle, uint64_t off, uint64_t len);
  /* Returns 0, or -1 if the stack below cannot report extents or fn
   * stopped it. */
  int (*extents)(void *handle, uint64_t off, uint64_t len, ufk_extent_fn fn,
                 void *opaque);
  /* NULL, for a caller built against 1.2 or later, when no level below
   * takes prefetches. */
  int (*prefetch)(void *handle, uint64_t off, uint64_t len);
  /* Since 1.2 (check size covers it).  Given to layers built against 1.2 or
   * later; a layer built against an older minor is given only pointers that
   * need no release. */
  void (*release)(void *handle, const void *ptr, uint64_t off, uint64_t len);
  /* Since 1.2 (check with UFK_NEXT_HAS).  The identity of the source at the
   * bottom of the stack below (its identity() callback): 0 with a string
   * that names the data's version, or -1 if the source cannot tell one, so
   * a layer keeping data across daemon restarts keys it by version. */
  int (*identity)(void *handle, char *buf, size_t len);
};

/* Whether the stack below offers `field` of struct ufk_next. */
#define UFK_NEXT_HAS(next, field)                                              \
  ((next)->size >= offsetof(struct ufk_next, field) + sizeof(void *) &&        \
   (next)->field)

/* Services of the daemon.  Config getters return 0 with *out set, 1 when the
 * key is absent and has no default, and -1 (after reporting an error that
 * names the key and its place in the config) when the value does not fit. */
struct ufk_host {
  uint32_t size; /* sizeof(struct ufk_host) of the running daemon */
  uint32_t abi_minor;

  void (*log)(int level, const char *fmt, ...)
      __attribute__((format(printf, 2, 3)));
  /* Records why the current callback failed.  errnum is an errno value (0 if
   * none applies); the daemon adds the plugin and instance names. */
  void (*error)(int errnum, const char *fmt, ...)
      __attribute__((format(printf, 2, 3)));

  int (*get_string)(const struct ufk_config *c, const char *key,
                    const char **out);
  int (*get_int)(const struct ufk_config *c, const char *key, int64_t *out);
  int (*get_bool)(const struct ufk_config *c, const char *key, int *out);
  int (*get_size)(const struct ufk_config *c, const char *key, uint64_t *out);
  int (*get_duration_ns)(const struct ufk_config *c, const char *key,
                         uint64_t *out);
  /* Number of items in a string list, or -1. */
  int (*get_list_count)(const struct ufk_config *c, const char *key);
  int (*get_list_item)(const struct ufk_config *c, const char *key, int index,
                       const char **out);
  /* Where a key was set ("file:line" or "command line"), for messages. */
  const char *(*where)(const struct ufk_config *c, const char *key);
  /* Name of the instance: "listener/plugin". */
  const char *(*instance_name)(const struct ufk_config *c);

  /* Creates and starts the source (with its layers) described by the group
   * setting `key`, replacing "{name}" with value in its string settings for
   * each (name, value) pair of vars (NULL-terminated).  Returns NULL after
   * reporting an error, errno that of the failure: EINVAL for a wrong
   * group, else what the nested source's start reported (ENOENT when its
   * object does not exist: a file, an http 404). */
  struct ufk_next *(*source_open)(const struct ufk_config *c, const char *key,
                                  const char *const *vars);
  void (*source_close)(struct ufk_next *n);

  /* A counter of this instance, exported by ctl and metrics as
   * uffdkit_plugin_NAME_total.  Update it with __atomic_fetch_add. */
  uint64_t *(*counter)(const struct ufk_config *c, const char *name,
                       const char *help);
  uint64_t (*now_ns)(void); /* CLOCK_MONOTONIC */

  /* Since 1.1 (check host->size covers it).  Opens a data file the way
   * open(2) does (O_CLOEXEC is added), returning a descriptor the caller
   * owns and closes, or -1 with errno.  Sources use it for the files they
   * serve: a read-only regular file is opened once per configuration
   * generation and kept by the daemon, so every worker of that generation,
   * after a crash or an upgrade, gets the same inode back even if the path
   * was replaced by rename since.  The descriptor may share its file offset
   * with others: use pread(2) or mmap(2), not read(2). */
  int (*open_file)(const char *path, int flags);

  /* Since 1.3.  memcpy(dst, src, len) out of a read-only mapping of a data
   * file, except that bytes the file no longer has (truncated since it was
   * mapped, or storage that failed) make it return -1 with errno EIO
   * instead of raising the SIGBUS that would end the worker and every VM
   * it serves.  0 when all len bytes were copied.  Lets a source read its
   * files from a mapping, with no system call per read. */
  int (*copy_mapped)(void *dst, const void *src, size_t len);
};

/* Whether the running daemon offers the host service `field`. */
#define UFK_HOST_HAS(host, field)                                              \
  ((host)->size >= offsetof(struct ufk_host, field) + sizeof(void *) &&        \
   (host)->field)

/* A plugin.  Required: name, create, get_size, read.  Everything else may
 * be NULL.
 *
 * Threads.  "Setup" below is the worker's main thread while it builds or
 * tears down the stacks, or for a per-restore listener (control `serve`)
 * the thread that starts its source: no other callback of the instance
 * runs then, but instances of different listeners may be set up at once.
 * "Data" callbacks (read, map, release, extents, prefetch, identity) run on
 * the daemon's fault, I/O pool and prefetch threads, or on threads of the
 * layer above, under the instance's thread_model (see enum
 * ufk_thread_model).
 *
 * Layers (UFK_PLUGIN_LAYER) built against minor 2 or later pass through:
 * map (with release), extents, prefetch, caps and identity left NULL act as
 * those of the stack below.  A layer's caps passed through keep below's
 * FAST and NOWAIT flags (its read must then pass UFK_READ_NOWAIT on and
 * never block otherwise) and set no max_concurrency or max_io of their own.
 * A layer built against minor 0 or 1 that leaves them NULL is not mappable,
 * reports no extents, ignores prefetches, has its own flags as caps, and
 * its identity is never asked, as before 1.2. */
struct ufk_plugin {
  uint32_t abi_major;   /* UFK_ABI_MAJOR */
  uint32_t abi_minor;   /* UFK_ABI_MINOR */
  uint32_t struct_size; /* sizeof(struct ufk_plugin) */
  uint32_t flags;       /* UFK_PLUGIN_* */
  uint32_t thread_model;
  uint32_t reserved;

  const char *name; /* [a-z0-9-]+, equal to the file name lib<name>.so */
  const char *version;
  const char *description;
  const struct ufk_param *params; /* terminated by a zero entry */

  /* Setup, once per process, before anything else.  Returns 0, or -1 after
   * host->error to refuse to load. */
  int (*load)(const struct ufk_host *host);
  /* Setup, once, after every instance is destroyed. */
  void (*unload)(void);

  /* Setup, once per configured instance.  Validate settings here (unknown
   * keys were already refused); start no threads, do no blocking I/O
   * (--check-config calls create then destroy, without start).  `below` is
   * the stack under a layer, NULL for a source.  Returns the instance, or
   * NULL after host->error. */
  void *(*create)(const struct ufk_config *cfg, struct ufk_next *below);
  /* Setup: threads, connections, opening files.  Returns 0, or -1 after
   * host->error (the worker then stops). */
  int (*start)(void *inst);
  /* Setup, layers before the sources below them. */
  void (*destroy)(void *inst);

  /* Per restored VM: open on the worker's main thread when the session
   * starts (or is taken over after a worker restart), close on the
   * session's thread once it has ended and no data call of it is left.
   * Levels open from the source up and close from the top down.  Not
   * serialised by the thread model.  The daemon has already checked that
   * every region lies inside get_size().  open returns 0, or -1 after
   * host->error to refuse the VM. */
  int (*open)(void *inst, const struct ufk_session_info *s);
  void (*close)(void *inst, const struct ufk_session_info *s);

  /* Setup, after start and caps: bytes of memory this source serves, never
   * changing afterwards; or -1 after host->error. */
  int64_t (*get_size)(void *inst);
  /* Data.  Fill buf (len bytes from off) completely and return 0, or return
   * -1 after host->error (EWOULDBLOCK for a UFK_READ_NOWAIT miss).  The
   * daemon guarantees off and len page-aligned, inside get_size(), no
   * larger than caps.max_io, and buf page-aligned. */
  int (*read)(void *inst, void *buf, uint64_t len, uint64_t off,
              uint32_t flags);
  /* Data, never blocking.  Zero-copy: a pointer to len bytes at off, or
   * NULL if this range cannot be mapped now (the daemon then calls read;
   * no host->error needed).  The pointer stays valid and unchanged until
   * release() is called with it or, for a plugin without release, until
   * destroy. */
  const void *(*map)(void *inst, uint64_t off, uint64_t len);
  /* Data.  Returns 0 after calling fn for each range of the given kind
   * within [off, off+len), in increasing order; -1 as soon as fn returns
   * -1; -1 after host->error if the extents cannot be found (the daemon
   * then reads every page).  Called on the top of each stack once over the
   * whole size after start, on the main thread, and maybe again later. */
  int (*extents)(void *inst, uint64_t off, uint64_t len, ufk_extent_fn fn,
                 void *opaque);
  /* Data, advisory: the range will be read soon.  Start the work rather
   * than waiting for it.  Returns 0, or -1 after host->error (a failed
   * prefetch is only logged). */
  int (*prefetch)(void *inst, uint64_t off, uint64_t len);
  /* Setup, after start: fill the zero-initialised *out.  Without caps,
   * out->flags = plugin flags (but see pass-through above). */
  void (*caps)(void *inst, struct ufk_caps *out);
  /* Data.  Names the data this instance serves (file identity and mtime, a
   * build id, an ETag...), so files derived from it, such as recorded
   * working sets, can tell when the source changed.  Writes a
   * NUL-terminated string into buf; returns 0, or -1 if it cannot tell
   * (the daemon then uses the plugin name and size). */
  int (*identity)(void *inst, char *buf, size_t len);

  /* Since 1.2.  Data: the caller is done with ptr, which map(inst, off,
   * len) returned; called once per pointer, from any data thread.  With a
   * map of its own and no release, a plugin's pointers are never released
   * (valid until destroy). */
  void (*release)(void *inst, const void *ptr, uint64_t off, uint64_t len);
};

#define UFK_PLUGIN_ABI                                                         \
  .abi_major = UFK_ABI_MAJOR, .abi_minor = UFK_ABI_MINOR,                      \
  .struct_size = sizeof(struct ufk_plugin)

/* The one exported symbol.  Use once per plugin:
 *   static const struct ufk_plugin plugin = { UFK_PLUGIN_ABI, .name = ... };
 *   UFFDKIT_PLUGIN(plugin)
 */
#define UFFDKIT_ENTRY_SYMBOL "uffdkit_plugin_entry"
#define UFFDKIT_PLUGIN(var)                                                    \
  __attribute__((visibility("default"))) const struct ufk_plugin *             \
  uffdkit_plugin_entry(void);                                                  \
  const struct ufk_plugin *uffdkit_plugin_entry(void) {                        \
    return &(var);                                                             \
  }

#ifdef __cplusplus
}
#endif

#endif /* UFFDKIT_PLUGIN_H */

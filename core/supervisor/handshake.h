/* Firecracker's UFFD handshake: one JSON array of regions, sent with the
 * userfaultfd in one sendmsg.  The parser is a pure function so it can be
 * unit-tested and fuzzed without sockets. */
#ifndef UFFDKIT_CORE_HANDSHAKE_H
#define UFFDKIT_CORE_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <uffdkit/plugin.h>

#include "config.h"

struct handshake {
  uint32_t page_size;
  uint32_t nregions;
  int keeps_socket; /* "page_size" present: Firecracker >= 1.12 */
  size_t consumed;  /* bytes of the JSON value; the rest is kept */
  struct ufk_region regions[CONF_MAX_REGIONS];
};

enum { HS_INVALID = -1, HS_INCOMPLETE = 0, HS_COMPLETE = 1 };

/* Parses buf[0..len).  Returns HS_COMPLETE with *h filled, HS_INCOMPLETE if
 * the array may still be completed by more bytes, or HS_INVALID with a
 * one-line reason in err. */
int handshake_parse(const char *buf, size_t len, uint32_t max_regions,
                    struct handshake *h, char *err, size_t errlen);

/* A handshake received piece by piece: how far its bytes were scanned for
 * the end of the array.  Zero-initialise one per connection and pass the
 * whole buffer received so far each time: only new bytes are scanned, and
 * the JSON is parsed only once the array has closed. */
struct hs_scan {
  size_t pos;
  long end; /* 0: not closed yet; -1: not an array */
  int started, depth, in_str, esc;
  size_t examined; /* bytes looked at, in all calls: the cost */
  unsigned parses; /* times the JSON was parsed */
};
int handshake_feed(struct hs_scan *sc, const char *buf, size_t len,
                   uint32_t max_regions, struct handshake *h, char *err,
                   size_t errlen);

#endif

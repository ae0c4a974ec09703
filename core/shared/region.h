/* Looking up the regions of a restore (as the handshake gave them) both
 * ways: by guest address, and by offset in the memory source. */
#ifndef UFFDKIT_CORE_REGION_H
#define UFFDKIT_CORE_REGION_H

#include <stdint.h>
#include <uffdkit/plugin.h>

/* Index of the region holding guest address addr, or -1. */
int region_find(const struct ufk_region *r, uint32_t n, uint64_t addr);
/* Index of the region whose source range holds offset off, or -1. */
int region_find_offset(const struct ufk_region *r, uint32_t n, uint64_t off);

#endif

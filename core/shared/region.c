#include "region.h"

/* Unsigned differences: an address below the base wraps past the size, so
 * one comparison tells both ends, up to the last byte of the space. */
int region_find(const struct ufk_region *r, uint32_t n, uint64_t addr) {
  for (uint32_t i = 0; i < n; i++)
    if (addr - r[i].base < r[i].size) return (int)i;
  return -1;
}

int region_find_offset(const struct ufk_region *r, uint32_t n, uint64_t off) {
  for (uint32_t i = 0; i < n; i++)
    if (off - r[i].offset < r[i].size) return (int)i;
  return -1;
}

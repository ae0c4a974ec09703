/* Which entry a build is read with (E2B's lookup, header-format 7.6 step 4):
 * the newest header's entry if its frames hold every range the header reads,
 * else the build's own header's entry for itself. */
#include <stdlib.h>
#include <string.h>

#include "snapint.h"

#define fail ufk_snap_fail

int ufk_snap_entry_covers(const struct ufk_snap_header *h,
                          const struct ufk_snap_entry *e, size_t *bad,
                          uint64_t *gap) {
  if (!ufk_snap_compressed(e)) return 1;
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    if (memcmp(m->build_id, e->build_id, 16)) continue;
    if (!ufk_snap_frames_cover(e, m->storage_offset, m->length, gap)) {
      *bad = i;
      return 0;
    }
  }
  return 1;
}

/* "Uncompressed, size unknown": E2B's all-zero entry. */
static int zero_entry(const uint8_t id[16], struct ufk_snap_entry *out) {
  memset(out, 0, sizeof *out);
  memcpy(out->build_id, id, 16);
  return 0;
}

static int gap_fail(const struct ufk_snap_header *h, const char *name,
                    size_t bad, uint64_t gap, const char *why,
                    struct ufk_snap_err *err) {
  char id[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(h->mappings[bad].build_id, id);
  return fail(err,
              "%s: mapping %zu reads byte 0x%llx of build %s, which no frame "
              "of its entry holds (a gap in the frame table), and %s",
              name, bad, (unsigned long long)gap, id, why);
}

/* The build's own header decides. */
static int from_own(const struct ufk_snap_header *h, const uint8_t id[16],
                    const struct ufk_snap_header *own, int have_entry,
                    const char *name, struct ufk_snap_entry *out,
                    struct ufk_snap_err *err) {
  const struct ufk_snap_entry *oe =
      ufk_snap_format(own) >= 4 ? ufk_snap_entry_of(own, id) : NULL;
  size_t bad = 0;
  uint64_t gap = 0;
  if (!oe) {
    if (have_entry)
      return gap_fail(h, name, bad, gap,
                      "the build's own header has no frames for it", err);
    return zero_entry(id, out);
  }
  if (!ufk_snap_entry_covers(h, oe, &bad, &gap))
    return gap_fail(h, name, bad, gap, "neither does the build's own header",
                    err);
  if (ufk_snap_entry_copy(oe, out) < 0)
    return fail(err, "%s: out of memory", name);
  return 0;
}

int ufk_snap_resolve(const struct ufk_snap_header *h, const uint8_t id[16],
                     ufk_snap_own_header_fn own_header, void *opaque,
                     const char *name, struct ufk_snap_entry *out,
                     struct ufk_snap_err *err) {
  memset(out, 0, sizeof *out);
  const struct ufk_snap_entry *e = ufk_snap_entry_of(h, id);
  size_t bad = 0;
  uint64_t gap = 0;
  if (ufk_snap_format(h) < 4) return zero_entry(id, out);
  if (e && ufk_snap_entry_covers(h, e, &bad, &gap)) {
    if (ufk_snap_entry_copy(e, out) < 0)
      return fail(err, "%s: out of memory", name);
    return 0;
  }
  if (!e && !memcmp(id, h->build_id, 16)) return zero_entry(id, out);
  struct ufk_snap_header own;
  int rc = own_header(opaque, id, &own, err);
  if (rc < 0) return -1;
  if (rc == 1) {
    if (e)
      return gap_fail(h, name, bad, gap, "the build has no header of its own",
                      err);
    return zero_entry(id, out);
  }
  rc = from_own(h, id, &own, e != NULL, name, out, err);
  ufk_snap_free(&own);
  return rc;
}

int ufk_snap_rescue(const struct ufk_snap_header *h, const uint8_t id[16],
                    ufk_snap_own_header_fn own_header, void *opaque,
                    const char *name, struct ufk_snap_entry *out,
                    struct ufk_snap_err *err) {
  struct ufk_snap_header own;
  char ids[UFK_SNAP_UUID_STR];
  ufk_snap_id_str(id, ids);
  int rc = own_header(opaque, id, &own, err);
  if (rc < 0) return -1;
  if (rc == 1)
    return fail(err,
                "%s: build %s has no uncompressed diff, and no header of its "
                "own",
                name, ids);
  const struct ufk_snap_entry *oe =
      ufk_snap_format(&own) >= 4 ? ufk_snap_entry_of(&own, id) : NULL;
  size_t bad = 0;
  uint64_t gap = 0;
  if (!ufk_snap_compressed(oe))
    rc = fail(err,
              "%s: build %s has no uncompressed diff, and its own header "
              "gives it no frames",
              name, ids);
  else if (!ufk_snap_entry_covers(h, oe, &bad, &gap))
    rc =
        gap_fail(h, name, bad, gap, "neither does the build's own header", err);
  else if (ufk_snap_entry_copy(oe, out) < 0)
    rc = fail(err, "%s: out of memory", name);
  ufk_snap_free(&own);
  return rc;
}

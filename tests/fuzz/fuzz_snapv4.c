/* The V4/V5 header parser (common/snapv4.c, snapv5.c, snapframe.c) on
 * arbitrary inner blocks (snapv4_wrap.h) and, as they are, on arbitrary
 * files.
 *
 * When a header parses: it validates again; its mappings are contiguous over
 * Size and ufk_snap_find lands in each at both ends; no two entries describe
 * one build; every frame is found at its first and last byte and nothing
 * before the first; the header written again (ufk_snap_encode) reads back
 * with the same mappings and entries; every build resolves (with no own
 * header) to an entry that holds all the header reads, or is refused with a
 * message; trimmed entries still validate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "snapheader.h"
#include "snapv4_wrap.h"

static void check_mappings(const struct ufk_snap_header *h) {
  uint64_t end = 0;
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    CHECK(m->offset == end && m->length && m->length % 4096 == 0, "mapping %zu",
          i);
    CHECK(ufk_snap_find(h, m->offset) == (long)i &&
              ufk_snap_find(h, m->offset + m->length - 1) == (long)i,
          "lookup of mapping %zu", i);
    end += m->length;
  }
  CHECK(end == h->size, "mappings end at %llu of %llu", (unsigned long long)end,
        (unsigned long long)h->size);
}

static void check_entries(const struct ufk_snap_header *h) {
  for (size_t i = 0; i < h->nentries; i++) {
    const struct ufk_snap_entry *e = &h->entries[i];
    CHECK(e->codec <= UFK_SNAP_CODEC_LZ4 && !ufk_snap_is_nil(e->build_id),
          "entry %zu", i);
    for (size_t k = 0; i < 64 && k < i; k++)
      CHECK(memcmp(h->entries[k].build_id, e->build_id, 16),
            "entries %zu and %zu", k, i);
    for (size_t k = 0; k < e->nframes && k < 256; k++) {
      const struct ufk_snap_frame *f = &e->frames[k];
      CHECK(ufk_snap_frame_find(e, f->start_u) == (long)k &&
                ufk_snap_frame_find(e, f->start_u + f->size_u - 1) == (long)k,
            "frame %zu of entry %zu", k, i);
    }
    if (e->nframes && e->frames[0].start_u)
      CHECK(ufk_snap_frame_find(e, e->frames[0].start_u - 1) == -1,
            "a byte before the first frame found");
  }
}

static void same(const struct ufk_snap_header *a,
                 const struct ufk_snap_header *b) {
  CHECK(a->nmappings == b->nmappings && a->nentries == b->nentries,
        "%zu/%zu mappings, %zu/%zu entries", a->nmappings, b->nmappings,
        a->nentries, b->nentries);
  for (size_t i = 0; i < a->nmappings; i++)
    CHECK(!memcmp(&a->mappings[i], &b->mappings[i], sizeof a->mappings[i]),
          "mapping %zu differs", i);
  for (size_t i = 0; i < a->nentries; i++) {
    const struct ufk_snap_entry *x = &a->entries[i], *y = &b->entries[i];
    CHECK(!memcmp(x->build_id, y->build_id, 16) && x->size == y->size &&
              x->codec == y->codec && x->nframes == y->nframes &&
              !memcmp(x->checksum, y->checksum, 32) &&
              (!x->nframes ||
               !memcmp(x->frames, y->frames, x->nframes * sizeof *x->frames)),
          "entry %zu differs", i);
  }
}

static void round_trip(const struct ufk_snap_header *h) {
  uint8_t *buf;
  size_t len;
  struct ufk_snap_err err;
  struct ufk_snap_header back;
  CHECK(ufk_snap_encode(h, &buf, &len, &err) == 0, "encode: %s", err.msg);
  CHECK(ufk_snap_parse(buf, len, "again", &back, &err) == 0,
        "written header refused: %s", err.msg);
  same(h, &back);
  ufk_snap_free(&back);
  free(buf);
}

static int no_header(void *opaque, const uint8_t id[16],
                     struct ufk_snap_header *own, struct ufk_snap_err *err) {
  (void)opaque, (void)id, (void)own, (void)err;
  return 1;
}

static void check_resolve(const struct ufk_snap_header *h) {
  struct ufk_snap_build *b;
  size_t nb;
  if (ufk_snap_builds(h, &b, &nb) < 0) return;
  for (size_t i = 0; i < nb && i < 64; i++) {
    struct ufk_snap_entry e;
    struct ufk_snap_err err = {0};
    size_t bad;
    uint64_t gap;
    if (ufk_snap_resolve(h, b[i].id, no_header, NULL, "h", &e, &err) < 0) {
      CHECK(err.msg[0], "resolve refused without a message");
      continue;
    }
    CHECK(ufk_snap_entry_covers(h, &e, &bad, &gap),
          "resolved entry leaves mapping %zu in a gap", bad);
    ufk_snap_entry_free(&e);
  }
  free(b);
}

static void one(const uint8_t *buf, size_t len) {
  struct ufk_snap_header h;
  struct ufk_snap_err err = {0};
  if (ufk_snap_parse(buf, len, "fuzz.header", &h, &err) < 0) {
    CHECK(err.msg[0], "refused without a message");
    CHECK(!h.mappings && !h.entries, "refused but kept data");
    return;
  }
  CHECK(ufk_snap_validate(&h, "again", &err) == 0, "%s", err.msg);
  if (ufk_snap_format(&h) >= 4) {
    check_mappings(&h);
    check_entries(&h);
    round_trip(&h);
    check_resolve(&h);
    CHECK(ufk_snap_trim(&h) == 0, "trim");
    CHECK(ufk_snap_validate(&h, "trimmed", &err) == 0, "%s", err.msg);
  }
  ufk_snap_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t len;
  uint8_t *f = snapv4_wrap(data, size, &len);
  if (f) {
    one(f, len);
    free(f);
  }
  one(data, size);
  return 0;
}

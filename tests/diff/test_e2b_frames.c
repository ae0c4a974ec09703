/* Unit tests of the frames of E2B V4/V5 builds: the zstd / lz4 codecs
 * (exact sizes, checksums required and checked), frame lookup and coverage,
 * trimming entries, and which entry a build is read with (the own-header
 * fallback). */
#include <check.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "checkrun.h"
#include "e2b_sample.h"

static uint8_t plain[3 * 4096];

static void fill(void) {
  for (size_t i = 0; i < sizeof plain; i++)
    plain[i] = (uint8_t)(i % 251 < 100 ? i / 7 : i % 13);
}

START_TEST(codecs) {
  uint32_t codec = _i ? UFK_SNAP_CODEC_LZ4 : UFK_SNAP_CODEC_ZSTD;
  void *z;
  size_t zl;
  uint8_t out[sizeof plain + 1];
  char why[160];
  fill();
  ck_assert_int_eq(
      ufk_snap_encode_frame(codec, 1, plain, sizeof plain, &z, &zl), 0);
  ck_assert_uint_lt(zl, sizeof plain);
  ck_assert_int_eq(
      ufk_snap_decode_frame(codec, z, zl, out, sizeof plain, why, sizeof why),
      0);
  ck_assert_mem_eq(out, plain, sizeof plain);
  /* SizeU one too small, one too large; input one byte short or long. */
  ck_assert_int_eq(ufk_snap_decode_frame(codec, z, zl, out, sizeof plain - 1,
                                         why, sizeof why),
                   -1);
  ck_assert_int_eq(ufk_snap_decode_frame(codec, z, zl, out, sizeof plain + 1,
                                         why, sizeof why),
                   -1);
  ck_assert_int_eq(ufk_snap_decode_frame(codec, z, zl - 1, out, sizeof plain,
                                         why, sizeof why),
                   -1);
  uint8_t *longer = malloc(zl + 1);
  memcpy(longer, z, zl);
  longer[zl] = 0;
  ck_assert_int_eq(ufk_snap_decode_frame(codec, longer, zl + 1, out,
                                         sizeof plain, why, sizeof why),
                   -1);
  free(longer);
  /* One bit anywhere in the data: the checksum catches it. */
  for (size_t at = 12; at < zl - 4; at += 7) {
    ((uint8_t *)z)[at] ^= 4;
    int rc =
        ufk_snap_decode_frame(codec, z, zl, out, sizeof plain, why, sizeof why);
    ((uint8_t *)z)[at] ^= 4;
    if (rc == 0) ck_abort_msg("a bit flipped at %zu was not noticed", at);
  }
  free(z);
}
END_TEST

START_TEST(frames_without_checksums) {
  char why[160];
  uint8_t out[sizeof plain];
  fill();
  size_t cap = ZSTD_compressBound(sizeof plain);
  void *z = malloc(cap);
  size_t zl = ZSTD_compress(z, cap, plain, sizeof plain, 1);
  ck_assert_int_eq(ufk_snap_decode_frame(UFK_SNAP_CODEC_ZSTD, z, zl, out,
                                         sizeof plain, why, sizeof why),
                   -1);
  ck_assert_str_eq(why, "the zstd frame has no content checksum");
  free(z);
  cap = LZ4F_compressFrameBound(sizeof plain, NULL);
  z = malloc(cap);
  zl = LZ4F_compressFrame(z, cap, plain, sizeof plain, NULL);
  ck_assert_int_eq(ufk_snap_decode_frame(UFK_SNAP_CODEC_LZ4, z, zl, out,
                                         sizeof plain, why, sizeof why),
                   -1);
  ck_assert_str_eq(why,
                   "the lz4 frame has neither block nor content checksums");
  free(z);
}
END_TEST

START_TEST(frame_lookup_and_trim) {
  struct ufk_snap_header h;
  uint64_t gap;
  sample(&h, 4);
  struct ufk_snap_entry *a = &h.entries[0];
  ck_assert_int_eq(ufk_snap_frame_find(a, 0), 0);
  ck_assert_int_eq(ufk_snap_frame_find(a, 4 * K4 - 1), 0);
  ck_assert_int_eq(ufk_snap_frame_find(a, 4 * K4), 1);
  ck_assert_int_eq(ufk_snap_frame_find(a, 8 * K4), -1);
  ck_assert_int_eq(ufk_snap_frames_cover(a, K4, 6 * K4, &gap), 1);
  ck_assert_int_eq(ufk_snap_frames_cover(a, K4, 8 * K4, &gap), 0);
  ck_assert_uint_eq(gap, 8 * K4);
  /* Mapping 0 reads frame 0, mapping 3 reads frame 1: both kept.  Without
   * mapping 3 frame 1 goes; B is referenced and stays. */
  memset(h.mappings[3].build_id, 0, 16);
  ck_assert_int_eq(ufk_snap_trim(&h), 0);
  ck_assert_uint_eq(h.nentries, 2);
  ck_assert_uint_eq(h.entries[0].nframes, 1);
  ck_assert_uint_eq(h.entries[0].frames[0].start_u, 0);
  /* Unreferenced ancestor entries are dropped, the own entry stays. */
  memset(h.mappings[2].build_id, 0, 16);
  memset(h.mappings[0].build_id, 0, 16);
  ck_assert_int_eq(ufk_snap_trim(&h), 0);
  ck_assert_uint_eq(h.nentries, 1);
  ck_assert_uint_eq(h.entries[0].nframes, 1);
  ufk_snap_free(&h);
}
END_TEST

/* ---- which entry a build is read with ---- */

static struct ufk_snap_header own_of_b;
static int own_state; /* 0: B has own_of_b, 1: no header, -1: error */
static int own_calls;

static int own(void *opaque, const uint8_t id[16], struct ufk_snap_header *o,
               struct ufk_snap_err *err) {
  (void)opaque;
  own_calls++;
  if (id[0] != 0xbb) return 1; /* only B has a header */
  if (own_state) return own_state < 0 ? ufk_snap_fail(err, "unreadable") : 1;
  uint8_t *buf;
  size_t len;
  ck_assert_int_eq(ufk_snap_encode(&own_of_b, &buf, &len, err), 0);
  int rc = ufk_snap_parse(buf, len, "b.header", o, err);
  free(buf);
  return rc;
}

/* B's own V4 header: B is lz4, one frame over its 16 KiB. */
static void make_own_of_b(void) {
  sample(&own_of_b, 4);
  memset(own_of_b.build_id, 0xbb, 16);
  for (size_t i = 0; i < own_of_b.nmappings; i++)
    if (!ufk_snap_is_nil(own_of_b.mappings[i].build_id))
      memset(own_of_b.mappings[i].build_id, 0xbb, 16);
  struct ufk_snap_entry *e = &own_of_b.entries[1];
  e->codec = UFK_SNAP_CODEC_LZ4;
  e->size = 8 * K4;
  e->nframes = 1;
  e->frames = calloc(1, sizeof *e->frames);
  e->frames[0] = fr(0, 0, 8 * K4, 99);
  ufk_snap_entry_free(&own_of_b.entries[0]);
  own_of_b.nentries = 1;
  own_of_b.entries[0] = *e;
}

START_TEST(resolve_entries) {
  struct ufk_snap_header h;
  struct ufk_snap_entry e;
  struct ufk_snap_err err;
  const uint8_t a[16] = {[0 ... 15] = 0xaa}, b[16] = {[0 ... 15] = 0xbb};
  make_own_of_b();
  sample(&h, 4);
  own_calls = 0;
  /* A's entry covers all: used as it is, no header read. */
  ck_assert_int_eq(ufk_snap_resolve(&h, a, own, NULL, "h", &e, &err), 0);
  ck_assert_uint_eq(e.codec, UFK_SNAP_CODEC_ZSTD);
  ck_assert_uint_eq(own_calls, 0);
  ufk_snap_entry_free(&e);
  /* B's all-zero entry: uncompressed. */
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), 0);
  ck_assert(!ufk_snap_compressed(&e));
  /* No entry for B: its own header's entry; none there: uncompressed. */
  h.nentries = 1;
  own_state = 0;
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), 0);
  ck_assert_uint_eq(e.codec, UFK_SNAP_CODEC_LZ4);
  ck_assert_uint_eq(own_calls, 1);
  ufk_snap_entry_free(&e);
  own_state = 1;
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), 0);
  ck_assert(!ufk_snap_compressed(&e));
  own_state = -1;
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), -1);
  ck_assert_str_eq(err.msg, "unreadable");
  /* No entry for the header's own build: uncompressed, no header read. */
  h.nentries = 0;
  own_calls = 0;
  ck_assert_int_eq(ufk_snap_resolve(&h, a, own, NULL, "h", &e, &err), 0);
  ck_assert(!ufk_snap_compressed(&e));
  ck_assert_uint_eq(own_calls, 0);
  h.nentries = 2;
  /* A gap in A's table (mapping 3 reads U 16K-32K, frame 1 gone). */
  h.entries[0].nframes = 1;
  ck_assert_int_eq(ufk_snap_resolve(&h, a, own, NULL, "h", &e, &err), -1);
  ck_assert_str_eq(err.msg,
                   "h: mapping 3 reads byte 0x4000 of build "
                   "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa, which no frame of "
                   "its entry holds (a gap in the frame table), and the build "
                   "has no header of its own");
  ufk_snap_free(&h);
  ufk_snap_free(&own_of_b);
}
END_TEST

/* A gapped table is healed from the build's own header. */
START_TEST(resolve_gap_from_own_header) {
  struct ufk_snap_header h;
  struct ufk_snap_entry e;
  struct ufk_snap_err err;
  const uint8_t b[16] = {[0 ... 15] = 0xbb};
  make_own_of_b();
  sample(&h, 5);
  struct ufk_snap_entry *eb = &h.entries[1];
  eb->codec = UFK_SNAP_CODEC_LZ4;
  eb->nframes = 1;
  eb->frames = calloc(1, sizeof *eb->frames);
  eb->frames[0] = fr(0, 0, K4, 10); /* B reads [8K, 24K): a gap */
  own_state = 0;
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), 0);
  ck_assert_uint_eq(e.nframes, 1);
  ck_assert_uint_eq(e.frames[0].size_u, 8 * K4);
  ufk_snap_entry_free(&e);
  own_state = 1;
  ck_assert_int_eq(ufk_snap_resolve(&h, b, own, NULL, "h", &e, &err), -1);
  ck_assert_str_eq(err.msg,
                   "h: mapping 2 reads byte 0x2000 of build "
                   "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb, which no frame of "
                   "its entry holds (a gap in the frame table), and the build "
                   "has no header of its own");
  ufk_snap_free(&h);
  ufk_snap_free(&own_of_b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("e2b-frames");
  TCase *t = tcase_create("frames");
  tcase_add_loop_test(t, codecs, 0, 2);
  tcase_add_test(t, frames_without_checksums);
  tcase_add_test(t, frame_lookup_and_trim);
  tcase_add_test(t, resolve_entries);
  tcase_add_test(t, resolve_gap_from_own_header);
  suite_add_tcase(s, t);
  return ufk_check_run(s);
}

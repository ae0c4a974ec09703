/* The diff plugin, loaded from the build tree with the fake host: reads over
 * many mappings, map, extents, settings and start errors, and the nested
 * store path. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkrun.h"
#include "fakehost.h"
#include "snapheader.h"

#define K4 4096ull
#define M2 (2ull << 20)
#define SIZE (4 * M2)
#define NBLOCKS (SIZE / K4)

/* Block i: i%5 in {0,1} from A, 2 from B, 3 and 4 nil; one mapping each. */
enum { FROM_A, FROM_B, NIL };
static int kind(uint64_t blk) {
  int r = (int)(blk % 5);
  return r < 2 ? FROM_A : r == 2 ? FROM_B : NIL;
}

static uint8_t id_a[16], id_b[16];
static char tmpdir[64], header[128], diffs[128], file_a[160], file_b[160];
static uint8_t *image; /* what the guest memory must read as */
static uint8_t *data_a, *data_b;
static size_t len_a, len_b;
static const struct ufk_plugin *plugin;

static uint8_t pattern(int tag, uint64_t pos) {
  return (uint8_t)(tag ^ (pos * 7) ^ (pos >> 12));
}

static void write_file(const char *path, const void *buf, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
  close(fd);
}

static void build_dir(const char *file) {
  char dir[160];
  snprintf(dir, sizeof dir, "%s", file);
  *strrchr(dir, '/') = 0;
  ck_assert_int_eq(mkdir(dir, 0755), 0);
}

/* Fills the builds' diffs, the expected image and the header's mappings. */
static void fill(struct ufk_snap_mapping *m) {
  for (uint64_t i = 0; i < NBLOCKS; i++) {
    m[i] = (struct ufk_snap_mapping){.offset = i * K4, .length = K4};
    int k = kind(i);
    if (k == NIL) continue;
    uint8_t *d = k == FROM_A ? data_a : data_b;
    size_t *len = k == FROM_A ? &len_a : &len_b;
    memcpy(m[i].build_id, k == FROM_A ? id_a : id_b, 16);
    m[i].storage_offset = *len;
    for (uint64_t j = 0; j < K4; j++)
      d[*len + j] = pattern(k == FROM_A ? 0xa1 : 0xb2, *len + j);
    memcpy(image + i * K4, d + *len, K4);
    *len += K4;
  }
}

static void write_header(void) {
  static struct ufk_snap_mapping m[NBLOCKS];
  fill(m);
  struct ufk_snap_header h = {.version = 3,
                              .block_size = K4,
                              .size = SIZE,
                              .generation = 2,
                              .nmappings = NBLOCKS,
                              .mappings = m};
  memcpy(h.build_id, id_b, 16);
  memcpy(h.base_build_id, id_a, 16);
  struct ufk_snap_err err;
  int fd = open(header, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ufk_snap_write_fd(&h, fd, header, &err), 0);
  close(fd);
}

static void setup(void) {
  strcpy(tmpdir, "/tmp/diff-plugin-test.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  memset(id_a, 0xa1, 16);
  memset(id_b, 0xb2, 16);
  snprintf(header, sizeof header, "%s/memfile.header", tmpdir);
  snprintf(diffs, sizeof diffs, "diffs=%s/{build_id}/memfile", tmpdir);
  snprintf(file_a, sizeof file_a,
           "%s/a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1/memfile", tmpdir);
  snprintf(file_b, sizeof file_b,
           "%s/b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2/memfile", tmpdir);
  image = calloc(1, SIZE);
  data_a = calloc(1, SIZE);
  data_b = calloc(1, SIZE);
  len_a = len_b = 0;
  write_header();
  build_dir(file_a);
  build_dir(file_b);
  write_file(file_a, data_a, len_a);
  write_file(file_b, data_b, len_b);
  plugin = fakehost_load(DIFF_PLUGIN);
  ck_assert_msg(plugin != NULL, "%s", fakehost_last_error());
  fakehost_clear_error();
}

/* Configs live as long as their instances: freed after each test. */
static struct ufk_config *configs[8];
static int nconfigs;

static void teardown(void) {
  while (nconfigs > 0)
    fakehost_config_free(configs[--nconfigs]);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
  free(image);
  free(data_a);
  free(data_b);
}

static char *kv(const char *key, const char *value) {
  static char buf[4][256];
  static int n;
  char *b = buf[n++ % 4];
  snprintf(b, sizeof buf[0], "%s=%s", key, value);
  return b;
}

/* Creates and starts an instance; NULL (error kept) if either fails. */
static void *start_with(const char *const *settings) {
  struct ufk_config *c = fakehost_config(plugin->params, settings);
  ck_assert_msg(c != NULL, "%s", fakehost_last_error());
  ck_assert_int_lt(nconfigs, 8);
  configs[nconfigs++] = c;
  void *inst = plugin->create(c, NULL);
  if (!inst) return NULL;
  if (plugin->start(inst) < 0) {
    plugin->destroy(inst);
    return NULL;
  }
  return inst;
}

static void *start_local(void) {
  void *inst = start_with((const char *[]){kv("header", header), diffs, NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  return inst;
}

static void check_pages(void *inst, uint64_t page) {
  uint8_t *buf = aligned_alloc(4096, page);
  for (uint64_t off = 0; off < SIZE; off += page) {
    memset(buf, 0x5a, page);
    ck_assert_int_eq(plugin->read(inst, buf, page, off, UFK_READ_FAULT), 0);
    if (memcmp(buf, image + off, page))
      ck_abort_msg("page at 0x%llx (size %llu) differs",
                   (unsigned long long)off, (unsigned long long)page);
  }
  free(buf);
}

START_TEST(plugin_description) {
  ck_assert_str_eq(plugin->name, "diff");
  ck_assert_uint_eq(plugin->thread_model, UFK_THREAD_PARALLEL);
  ck_assert_ptr_nonnull(plugin->map);
  ck_assert_ptr_nonnull(plugin->extents);
}
END_TEST

START_TEST(read_4k_pages) {
  void *inst = start_local();
  ck_assert_int_eq(plugin->get_size(inst), (int64_t)SIZE);
  check_pages(inst, K4);
  ck_assert_uint_eq(fakehost_counter("bytes_read"), len_a + len_b);
  ck_assert_uint_eq(fakehost_counter("bytes_zero"), SIZE - len_a - len_b);
  plugin->destroy(inst);
}
END_TEST

/* A 2 MiB page spans 512 mappings of three kinds. */
START_TEST(read_2m_pages_over_4k_blocks) {
  void *inst = start_local();
  check_pages(inst, M2);
  plugin->destroy(inst);
}
END_TEST

START_TEST(read_outside_fails) {
  void *inst = start_local();
  uint8_t buf[4096];
  ck_assert_int_eq(plugin->read(inst, buf, K4, SIZE, 0), -1);
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "outside the size"));
  plugin->destroy(inst);
}
END_TEST

START_TEST(map_inside_one_mapping) {
  void *inst = start_local();
  const uint8_t *p = plugin->map(inst, 5 * K4, K4); /* block 5: A */
  ck_assert_ptr_nonnull(p);
  ck_assert_mem_eq(p, image + 5 * K4, K4);
  p = plugin->map(inst, 7 * K4 + 512, 1024); /* inside block 7: B */
  ck_assert_ptr_nonnull(p);
  ck_assert_mem_eq(p, image + 7 * K4 + 512, 1024);
  ck_assert_ptr_null(plugin->map(inst, 5 * K4, 2 * K4)); /* two mappings */
  ck_assert_ptr_null(plugin->map(inst, 3 * K4, K4));     /* nil */
  ck_assert_ptr_null(plugin->map(inst, 0, M2));          /* many */
  ck_assert_ptr_null(plugin->map(inst, SIZE, K4));       /* outside */
  /* What went out through map() counts as served; declined maps do not. */
  ck_assert_uint_eq(fakehost_counter("reads"), 2);
  ck_assert_uint_eq(fakehost_counter("bytes_read"), K4 + 1024);
  plugin->destroy(inst);
}
END_TEST

struct ext {
  int n;
  uint64_t off[1024], len[1024];
};

static int collect(void *opaque, uint64_t off, uint64_t len, uint32_t kind) {
  struct ext *e = opaque;
  ck_assert_uint_eq(kind, UFK_EXTENT_ZERO);
  e->off[e->n] = off;
  e->len[e->n++] = len;
  return 0;
}

START_TEST(extents_are_merged_and_clipped) {
  void *inst = start_local();
  static struct ext e;
  e.n = 0;
  ck_assert_int_eq(plugin->extents(inst, 0, SIZE, collect, &e), 0);
  /* Every run of nil blocks comes back as one extent. */
  int n = 0;
  for (uint64_t i = 0; i < NBLOCKS; i++) {
    if (kind(i) != NIL || (i > 0 && kind(i - 1) == NIL)) continue;
    uint64_t end = i;
    while (end < NBLOCKS && kind(end) == NIL)
      end++;
    ck_assert_int_lt(n, e.n);
    ck_assert_uint_eq(e.off[n], i * K4);
    ck_assert_uint_eq(e.len[n], (end - i) * K4);
    n++;
  }
  ck_assert_int_eq(e.n, n);
  /* Blocks 3-4 and 8-9 are nil; ask for 4 KiB + 100 into block 4 up to the
   * middle of block 8. */
  e.n = 0;
  ck_assert_int_eq(
      plugin->extents(inst, 4 * K4 + 100, 4 * K4 - 100 + K4 / 2, collect, &e),
      0);
  ck_assert_int_eq(e.n, 2);
  ck_assert_uint_eq(e.off[0], 4 * K4 + 100);
  ck_assert_uint_eq(e.len[0], K4 - 100);
  ck_assert_uint_eq(e.off[1], 8 * K4);
  ck_assert_uint_eq(e.len[1], K4 / 2);
  e.n = 0;
  ck_assert_int_eq(plugin->extents(inst, 0, 3 * K4, collect, &e), 0);
  ck_assert_int_eq(e.n, 0);
  plugin->destroy(inst);
}
END_TEST

static int stop_at_first(void *opaque, uint64_t off, uint64_t len,
                         uint32_t kind) {
  (void)off, (void)len, (void)kind;
  ++*(int *)opaque;
  return -1;
}

START_TEST(extents_stop_when_asked) {
  void *inst = start_local();
  int calls = 0;
  ck_assert_int_eq(plugin->extents(inst, 0, SIZE, stop_at_first, &calls), -1);
  ck_assert_int_eq(calls, 1);
  plugin->destroy(inst);
}
END_TEST

START_TEST(identity_names_the_build) {
  void *inst = start_local();
  char buf[128];
  ck_assert_int_eq(plugin->identity(inst, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "diff build b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2 "
                        "generation 2 size 8388608");
  ck_assert_int_eq(plugin->identity(inst, buf, 10), -1);
  plugin->destroy(inst);
}
END_TEST

START_TEST(caps_fast_when_local) {
  void *inst = start_local();
  struct ufk_caps caps = {0};
  plugin->caps(inst, &caps);
  ck_assert_uint_eq(caps.flags & UFK_PLUGIN_FAST, UFK_PLUGIN_FAST);
  plugin->destroy(inst);
}
END_TEST

static void expect_create_error(const char *const *settings, const char *msg) {
  struct ufk_config *c = fakehost_config(plugin->params, settings);
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_null(plugin->create(c, NULL));
  ck_assert_msg(strstr(fakehost_last_error(), msg), "got \"%s\", want \"%s\"",
                fakehost_last_error(), msg);
  fakehost_config_free(c);
}

START_TEST(settings_are_checked) {
  expect_create_error((const char *[]){kv("header", header), NULL},
                      "set diffs (a path with {build_id}) or store");
  expect_create_error(
      (const char *[]){kv("header", header), diffs, "store=x", NULL},
      "set only one of them");
  expect_create_error(
      (const char *[]){kv("header", header), "diffs=/srv/memfile", NULL},
      "'/srv/memfile' does not contain {build_id}");
}
END_TEST

static void expect_start_error(const char *want) {
  ck_assert_ptr_null(
      start_with((const char *[]){kv("header", header), diffs, NULL}));
  ck_assert_msg(strstr(fakehost_last_error(), want), "got \"%s\", want \"%s\"",
                fakehost_last_error(), want);
}

START_TEST(missing_header) {
  unlink(header);
  char want[256];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
           header);
  expect_start_error(want);
}
END_TEST

START_TEST(corrupt_header) {
  ck_assert_int_eq(truncate(header, 64 + 40 * 3 + 7), 0);
  char want[256];
  snprintf(want, sizeof want,
           "%s: 191 bytes: mapping 3 (byte 184) is partial, 7 of 40 bytes",
           header);
  expect_start_error(want);
}
END_TEST

START_TEST(missing_build_file) {
  unlink(file_b);
  char want[512];
  snprintf(want, sizeof want,
           "%s: cannot open the diff of build "
           "b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2 (used from mapping 2 of %s)",
           file_b, header);
  expect_start_error(want);
}
END_TEST

START_TEST(build_file_too_short) {
  ck_assert_int_eq(truncate(file_a, (off_t)len_a - 1), 0);
  char want[512];
  snprintf(want, sizeof want,
           "%s: %zu bytes, too short for build "
           "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1: mapping %d of %s",
           file_a, len_a - 1, (int)(NBLOCKS - 2), header);
  expect_start_error(want);
}
END_TEST

/* The nested store: one fake source per build id. */
struct fake_src {
  struct ufk_next next;
  const uint8_t *data;
  size_t len;
  int reads;
};
static struct fake_src srcs[2];
static int opened;
static char opened_ids[2][40];

static int64_t fs_size(void *h) {
  return (int64_t)((struct fake_src *)h)->len;
}

static int fs_read(void *h, void *buf, uint64_t len, uint64_t off,
                   uint32_t flags) {
  (void)flags;
  struct fake_src *s = h;
  ck_assert_uint_le(off + len, s->len);
  ck_assert_uint_eq(off % K4, 0);
  memcpy(buf, s->data + off, len);
  s->reads++;
  return 0;
}

static struct ufk_next *fake_open(const char *key, const char *const *vars,
                                  void *opaque) {
  (void)opaque;
  ck_assert_str_eq(key, "store");
  ck_assert_str_eq(vars[0], "build_id");
  /* v1-3 builds are uncompressed: no suffix after the file name. */
  ck_assert_str_eq(vars[2], "suffix");
  ck_assert_str_eq(vars[3], "");
  ck_assert_ptr_null(vars[4]);
  ck_assert_int_lt(opened, 2);
  snprintf(opened_ids[opened++], sizeof opened_ids[0], "%s", vars[1]);
  struct fake_src *s = &srcs[vars[1][0] == 'a' ? 0 : 1];
  s->data = s == &srcs[0] ? data_a : data_b;
  s->len = s == &srcs[0] ? len_a : len_b;
  s->next = (struct ufk_next){.size = sizeof(struct ufk_next),
                              .handle = s,
                              .get_size = fs_size,
                              .read = fs_read};
  return &s->next;
}

static void *start_store(void) {
  opened = 0;
  memset(srcs, 0, sizeof srcs);
  fakehost_set_source_open(fake_open, NULL);
  return start_with((const char *[]){kv("header", header), "store=http", NULL});
}

START_TEST(store_reads_each_build) {
  void *inst = start_store();
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  ck_assert_int_eq(opened, 2);
  ck_assert_str_eq(opened_ids[0], "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1");
  ck_assert_str_eq(opened_ids[1], "b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2");
  check_pages(inst, M2);
  check_pages(inst, K4);
  ck_assert_int_gt(srcs[0].reads, 0);
  ck_assert_int_gt(srcs[1].reads, 0);
  ck_assert_ptr_null(plugin->map(inst, 5 * K4, K4));
  struct ufk_caps caps = {0};
  plugin->caps(inst, &caps);
  ck_assert_uint_eq(caps.flags & UFK_PLUGIN_FAST, 0);
  plugin->destroy(inst);
}
END_TEST

START_TEST(store_too_short) {
  len_b -= K4; /* the fake B source now reports one block less */
  ck_assert_ptr_null(start_store());
  ck_assert_msg(strstr(fakehost_last_error(),
                       "store:b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2: "),
                "%s", fakehost_last_error());
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "too short"));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("diff plugin");
  TCase *t = tcase_create("local");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 30);
  tcase_add_test(t, plugin_description);
  tcase_add_test(t, read_4k_pages);
  tcase_add_test(t, read_2m_pages_over_4k_blocks);
  tcase_add_test(t, read_outside_fails);
  tcase_add_test(t, map_inside_one_mapping);
  tcase_add_test(t, extents_are_merged_and_clipped);
  tcase_add_test(t, extents_stop_when_asked);
  tcase_add_test(t, caps_fast_when_local);
  tcase_add_test(t, identity_names_the_build);
  suite_add_tcase(s, t);
  t = tcase_create("errors");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, settings_are_checked);
  tcase_add_test(t, missing_header);
  tcase_add_test(t, corrupt_header);
  tcase_add_test(t, missing_build_file);
  tcase_add_test(t, build_file_too_short);
  suite_add_tcase(s, t);
  t = tcase_create("store");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, store_reads_each_build);
  tcase_add_test(t, store_too_short);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return ufk_check_run(suite());
}

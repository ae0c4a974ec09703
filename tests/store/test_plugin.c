/* The store plugin, loaded from the build tree with the fake host, over a
 * store made by uffdkit-snap: reads of whole chunks, parts of chunks and
 * spans of many; zero extents; the nested-source path ({object}); settings
 * refused; a flipped bit and a wrong key refused with messages; prefetched
 * chunks checked, put in the one chunk cache under its bound, and never
 * fetched twice. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkrun.h"
#include "fakehost.h"

#define K4 4096u
#define CHUNK (16u << 10)
#define SIZE (64u * CHUNK)

static const struct ufk_plugin *plugin;
static char dir[64], store[128], image[128];
static uint8_t *want;

static void make_image(void) {
  want = malloc(SIZE);
  for (uint32_t c = 0; c < SIZE / CHUNK; c++) {
    uint8_t *p = want + (size_t)c * CHUNK;
    if (c % 4 == 3)
      memset(p, 0, CHUNK); /* zero chunks */
    else if (c % 4 == 2)
      memcpy(p, want, CHUNK); /* a duplicate of chunk 0 */
    else
      for (uint32_t i = 0; i < CHUNK; i++)
        p[i] = (uint8_t)(c % 4 ? (i * 31 + c) ^ (i >> 7)
                               : (uint32_t)(uint8_t) "page"[i % 4]);
  }
  int fd = open(image, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_eq(write(fd, want, SIZE), SIZE);
  close(fd);
}

static void snap(const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s store import %s %s >/dev/null", SNAP_TOOL,
           store, args);
  ck_assert_int_eq(system(cmd), 0);
}

/* The store's chunks: pages decoded each alone (the default), or whole. */
static int by_chunk;

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/uffdkit-store-unit.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(store, sizeof store, "%s/st", dir);
  snprintf(image, sizeof image, "%s/img", dir);
  make_image();
  char args[512];
  snprintf(args, sizeof args, "g0 %s --chunk-size 16K%s", image,
           by_chunk ? " --decode-by chunk" : "");
  snap(args);
  plugin = fakehost_load(STORE_PLUGIN);
  ck_assert_ptr_nonnull(plugin);
}

/* Configs and fake objects live until the test ends (the fake host's
 * source_close frees nothing). */
static struct ufk_config *configs[32];
static int nconfigs;
struct fake_obj;
static struct fake_obj *objs[32];
static int nobjs;
static void free_objs(void);

static void teardown(void) {
  for (int i = 0; i < nconfigs; i++)
    fakehost_config_free(configs[i]);
  nconfigs = 0;
  free_objs();
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
  free(want);
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
  ck_assert_int_lt(nconfigs, 32);
  configs[nconfigs++] = c;
  fakehost_clear_error();
  void *inst = plugin->create(c, NULL);
  if (inst && plugin->start(inst) < 0) {
    plugin->destroy(inst);
    inst = NULL;
  }
  return inst;
}

static void check_reads(void *inst, uint64_t piece) {
  uint8_t *buf = aligned_alloc(K4, piece);
  for (uint64_t off = 0; off < SIZE; off += piece) {
    memset(buf, 0x5a, piece);
    ck_assert_msg(plugin->read(inst, buf, piece, off, 0) == 0, "%s",
                  fakehost_last_error());
    ck_assert_msg(!memcmp(buf, want + off, piece), "bytes at %llu",
                  (unsigned long long)off);
  }
  free(buf);
}

static int ufk_store_test_zero(uint64_t off, uint64_t len) {
  for (uint64_t i = 0; i < len; i++)
    if (want[off + i]) return 0;
  return 1;
}

static int count_extent(void *opaque, uint64_t off, uint64_t len,
                        uint32_t kind) {
  ck_assert_uint_eq(kind, UFK_EXTENT_ZERO);
  ck_assert(ufk_store_test_zero(off, len));
  ++*(int *)opaque;
  return 0;
}

START_TEST(local_reads) {
  void *inst =
      start_with((const char *[]){kv("path", store), "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  ck_assert_int_eq(plugin->get_size(inst), SIZE);
  check_reads(inst, CHUNK);     /* whole chunks, decoded in place */
  check_reads(inst, K4);        /* parts of chunks */
  check_reads(inst, 4 * CHUNK); /* many chunks, zero ones among them */
  int n = 0;
  ck_assert_int_eq(plugin->extents(inst, 0, SIZE, count_extent, &n), 0);
  ck_assert_int_eq(n, SIZE / CHUNK / 4);
  ck_assert_uint_gt(fakehost_counter("chunks"), 0);
  ck_assert_uint_eq(fakehost_counter("chunks_bad"), 0);
  char id[256];
  ck_assert_int_eq(plugin->identity(inst, id, sizeof id), 0);
  ck_assert_ptr_nonnull(strstr(id, "store snapshot g0 manifest "));
  plugin->destroy(inst);
}
END_TEST

/* Nested objects: a fake source per object, reading the local files. */
struct fake_obj {
  struct ufk_next next;
  int fd;
  int64_t size;
};
static int nopened;
static char names[16][128];

static void free_objs(void) {
  for (int i = 0; i < nobjs; i++) {
    close(objs[i]->fd);
    free(objs[i]);
  }
  nobjs = 0;
}

static int64_t fo_size(void *h) {
  return ((struct fake_obj *)h)->size;
}
static int fo_reads; /* reads of nested objects */
/* While fo_gate is set, reads of nested objects wait for it to clear. */
static pthread_mutex_t fo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fo_cond = PTHREAD_COND_INITIALIZER;
static int fo_gate;
static int fo_read(void *h, void *buf, uint64_t len, uint64_t off,
                   uint32_t flags) {
  (void)flags;
  struct fake_obj *o = h;
  __atomic_fetch_add(&fo_reads, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&fo_lock);
  while (fo_gate)
    pthread_cond_wait(&fo_cond, &fo_lock);
  pthread_mutex_unlock(&fo_lock);
  return pread(o->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

static void fo_set_gate(int on) {
  pthread_mutex_lock(&fo_lock);
  fo_gate = on;
  pthread_cond_broadcast(&fo_cond);
  pthread_mutex_unlock(&fo_lock);
}

static struct ufk_next *fake_open(const char *key, const char *const *vars,
                                  void *opaque) {
  (void)opaque;
  ck_assert_str_eq(key, "objects");
  ck_assert_str_eq(vars[0], "object");
  ck_assert_ptr_null(vars[2]);
  snprintf(names[nopened++ % 16], sizeof names[0], "%s", vars[1]);
  char path[512];
  snprintf(path, sizeof path, "%s/%s", store, vars[1]);
  struct fake_obj *o = calloc(1, sizeof *o);
  ck_assert_int_lt(nobjs, 32);
  objs[nobjs++] = o;
  o->fd = open(path, O_RDONLY);
  ck_assert_int_ge(o->fd, 0);
  struct stat st;
  fstat(o->fd, &st);
  o->size = st.st_size;
  o->next = (struct ufk_next){.size = sizeof(struct ufk_next),
                              .handle = o,
                              .get_size = fo_size,
                              .read = fo_read};
  return &o->next;
}

START_TEST(nested_reads) {
  nopened = 0;
  fakehost_set_source_open(fake_open, NULL);
  void *inst = start_with((const char *[]){"objects=x", "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  ck_assert_str_eq(names[0], "store");
  ck_assert_str_eq(names[1], "snapshots/g0");
  ck_assert_int_eq(nopened, 4); /* store, manifest, index, pack */
  ck_assert_ptr_nonnull(strstr(names[2], ".idx"));
  ck_assert_ptr_nonnull(strstr(names[3], ".pack"));
  check_reads(inst, K4);
  check_reads(inst, 2 * CHUNK);
  struct ufk_caps caps = {0};
  plugin->caps(inst, &caps);
  ck_assert_uint_eq(caps.flags & UFK_PLUGIN_FAST, 0);
  plugin->destroy(inst);
}
END_TEST

static void expect_create_error(const char *const *settings, const char *msg) {
  void *inst = start_with(settings);
  ck_assert_ptr_null(inst);
  ck_assert_msg(strstr(fakehost_last_error(), msg), "got: %s",
                fakehost_last_error());
}

START_TEST(settings_refused) {
  expect_create_error((const char *[]){"snapshot=g0", NULL},
                      "set path (a local store) or objects");
  expect_create_error(
      (const char *[]){kv("path", store), "objects=x", "snapshot=g0", NULL},
      "set path (a local store) or objects");
  expect_create_error(
      (const char *[]){kv("path", store), "snapshot=../x", NULL},
      "is not a snapshot name");
  expect_create_error((const char *[]){kv("path", store), "snapshot=g0",
                                       "key_file=/a", "key_env=B", NULL},
                      "key_file");
  expect_create_error((const char *[]){kv("path", store), "snapshot=g0",
                                       "key_env=UFK_TEST_UNSET", NULL},
                      "key variable UFK_TEST_UNSET: not set");
  setenv("UFK_TEST_KEY",
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
  expect_create_error((const char *[]){kv("path", store), "snapshot=g0",
                                       "key_env=UFK_TEST_KEY", NULL},
                      "the store is not encrypted, but a key was given");
}
END_TEST

/* Flips one bit in the codec's bytes of the second chunk stored (by
 * offset; the first is shared by the image's many equal chunks), found
 * through the pack's index (docs/store-format.md: entries of 56 bytes from
 * byte 64, offset at 32 and stored length at 40; their number at byte 48). */
static void flip_chunk_one(void) {
  char cmd[1536];
  snprintf(cmd, sizeof cmd,
           "x=$(ls %s/packs/*.idx) && python3 -c \"import struct, sys\n"
           "b = open(sys.argv[1], 'rb').read()\n"
           "n = struct.unpack_from('<I', b, 48)[0]\n"
           "e = sorted(struct.unpack_from('<QI', b, 64 + 56 * i + 32) "
           "for i in range(n))\n"
           "at = e[1][0] + e[1][1] - 2\n"
           "f = open(sys.argv[1][:-4] + '.pack', 'r+b'); f.seek(at)\n"
           "c = f.read(1); f.seek(at); f.write(bytes([c[0] ^ 1]))\" $x",
           store);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(flipped_bit) {
  flip_chunk_one();
  void *inst =
      start_with((const char *[]){kv("path", store), "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  uint8_t *buf = aligned_alloc(K4, CHUNK);
  int bad = 0;
  for (uint64_t off = 0; off < SIZE; off += CHUNK) {
    fakehost_clear_error();
    if (plugin->read(inst, buf, CHUNK, off, 0) == 0) {
      ck_assert(!memcmp(buf, want + off, CHUNK));
      continue;
    }
    bad++;
    ck_assert_int_eq(fakehost_last_errno(), EIO);
    ck_assert_msg(
        strstr(fakehost_last_error(), "of snapshot g0 (image bytes") &&
            (strstr(fakehost_last_error(), "hash to") ||
             strstr(fakehost_last_error(), "does not decode")),
        "%s", fakehost_last_error());
    /* Its pages are checked one by one: the damaged one fails, the others
     * are served right. */
    int bad_pages = 0;
    for (uint64_t p = off; p < off + CHUNK; p += K4) {
      if (plugin->read(inst, buf, K4, p, 0) == 0)
        ck_assert(!memcmp(buf, want + p, K4));
      else
        bad_pages++;
    }
    ck_assert_int_ge(bad_pages, 1);
  }
  /* The flipped byte is in one chunk stored; chunks sharing its bytes fail
   * together, every other one reads right. */
  ck_assert_int_ge(bad, 1);
  ck_assert_uint_gt(fakehost_counter("chunks_bad"), 0);
  free(buf);
  plugin->destroy(inst);
}
END_TEST

/* Reads the 4 KiB pages of chunk 1 in turn: the decodes (chunks) and the
 * stored bytes read (bytes_fetched) they cost. */
static void pages_of_chunk_one(void *inst, uint64_t *decodes,
                               uint64_t *fetched) {
  uint64_t d0 = fakehost_counter("chunks"),
           f0 = fakehost_counter("bytes_fetched");
  uint8_t *buf = aligned_alloc(K4, K4);
  for (uint64_t off = CHUNK; off < 2 * CHUNK; off += K4) {
    ck_assert_msg(plugin->read(inst, buf, K4, off, 0) == 0, "%s",
                  fakehost_last_error());
    ck_assert(!memcmp(buf, want + off, K4));
  }
  free(buf);
  *decodes = fakehost_counter("chunks") - d0;
  *fetched = fakehost_counter("bytes_fetched") - f0;
}

START_TEST(checked_chunks_kept) {
  uint64_t decodes, fetched, once;
  void *inst =
      start_with((const char *[]){kv("path", store), "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  pages_of_chunk_one(inst, &decodes, &once);
  ck_assert_uint_eq(decodes, 1);
  ck_assert_uint_gt(once, 0);
  ck_assert_uint_eq(fakehost_counter("chunk_cache_hits"), CHUNK / K4 - 1);
  pages_of_chunk_one(inst, &decodes, &fetched); /* still kept */
  ck_assert_uint_eq(decodes, 0);
  ck_assert_uint_eq(fetched, 0);
  check_reads(inst, K4); /* every chunk through the kept ones, right */
  plugin->destroy(inst);

  inst = start_with((const char *[]){kv("path", store), "snapshot=g0",
                                     "chunk_cache=0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  pages_of_chunk_one(inst, &decodes, &fetched);
  ck_assert_uint_eq(decodes, CHUNK / K4);
  ck_assert_uint_eq(fetched, CHUNK / K4 * once);
  plugin->destroy(inst);
}
END_TEST

/* A prefetch of the whole image fetches its chunks in a few merged pack
 * reads, checks them, and every later read is answered without another
 * fetch, every byte right. */
START_TEST(prefetch_holds_chunks) {
  fakehost_set_source_open(fake_open, NULL);
  void *inst = start_with((const char *[]){"objects=x", "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  ck_assert_ptr_nonnull(plugin->prefetch);
  fo_reads = 0;
  ck_assert_msg(plugin->prefetch(inst, 0, SIZE) == 0, "%s",
                fakehost_last_error());
  int fetched = fo_reads;
  ck_assert_int_ge(fetched, 1);
  ck_assert_int_lt(fetched, 8); /* not one read per chunk */
  ck_assert_int_eq(plugin->prefetch(inst, 0, SIZE), 0);
  /* Prefetched chunks are in the chunk cache: every read of a stored
   * chunk is one of its hits. */
  uint64_t hits = fakehost_counter("chunk_cache_hits");
  check_reads(inst, K4);
  ck_assert_uint_eq(fakehost_counter("chunk_cache_hits") - hits,
                    SIZE / CHUNK * 3 / 4 * (CHUNK / K4));
  check_reads(inst, 2 * CHUNK);
  ck_assert_int_eq(fo_reads, fetched);
  plugin->destroy(inst);
}
END_TEST

/* Prefetches fill the one chunk cache, under its bound: a prefetch of the
 * whole image into a cache of 4 chunks decodes at most 4 (not the 48
 * stored), and one into a cache of none fetches nothing; reads are right
 * either way. */
START_TEST(prefetch_bounded_by_chunk_cache) {
  fakehost_set_source_open(fake_open, NULL);
  void *inst = start_with(
      (const char *[]){"objects=x", "snapshot=g0", "chunk_cache=64K", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  uint64_t d0 = fakehost_counter("chunks");
  ck_assert_int_eq(plugin->prefetch(inst, 0, SIZE), 0);
  ck_assert_uint_ge(fakehost_counter("chunks") - d0, 1);
  ck_assert_uint_le(fakehost_counter("chunks") - d0, 4);
  check_reads(inst, K4);
  plugin->destroy(inst);

  inst = start_with(
      (const char *[]){"objects=x", "snapshot=g0", "chunk_cache=0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  d0 = fakehost_counter("chunks");
  fo_reads = 0;
  ck_assert_int_eq(plugin->prefetch(inst, 0, SIZE), 0);
  ck_assert_int_eq(fo_reads, 0);
  ck_assert_uint_eq(fakehost_counter("chunks") - d0, 0);
  check_reads(inst, CHUNK);
  plugin->destroy(inst);
}
END_TEST

struct call {
  void *inst;
  uint8_t *buf;
  int rc, done;
};

static void *prefetch_chunk_one(void *arg) {
  struct call *c = arg;
  c->rc = plugin->prefetch(c->inst, CHUNK, CHUNK);
  __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *read_chunk_one(void *arg) {
  struct call *c = arg;
  c->rc = plugin->read(c->inst, c->buf, K4, CHUNK + K4, 0);
  __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* A read of a chunk a prefetch is fetching waits for that fetch and takes
 * its bytes: the chunk is fetched and decoded once. */
START_TEST(read_waits_for_prefetch) {
  fakehost_set_source_open(fake_open, NULL);
  void *inst = start_with((const char *[]){"objects=x", "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  uint64_t d0 = fakehost_counter("chunks");
  fo_reads = 0;
  fo_set_gate(1);
  struct call p = {.inst = inst}, r = {.inst = inst, .buf = malloc(K4)};
  pthread_t tp, tr;
  ck_assert_int_eq(pthread_create(&tp, NULL, prefetch_chunk_one, &p), 0);
  while (__atomic_load_n(&fo_reads, __ATOMIC_RELAXED) == 0)
    usleep(1000);
  ck_assert_int_eq(pthread_create(&tr, NULL, read_chunk_one, &r), 0);
  usleep(200000);
  ck_assert_int_eq(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), 0);
  fo_set_gate(0);
  pthread_join(tp, NULL);
  pthread_join(tr, NULL);
  ck_assert_int_eq(p.rc, 0);
  ck_assert_int_eq(r.rc, 0);
  ck_assert(!memcmp(r.buf, want + CHUNK + K4, K4));
  ck_assert_int_eq(fo_reads, 1);
  ck_assert_uint_eq(fakehost_counter("chunks") - d0, 1);
  free(r.buf);
  plugin->destroy(inst);
}
END_TEST

/* A chunk that fails its check while prefetched is never held: reads of
 * it fetch it again and fail with EIO; every other chunk reads right.  A
 * prefetch of a store with page blocks checks each chunk's sums but
 * decodes no page: its damaged page fails when read (and the chunk is
 * dropped). */
START_TEST(prefetch_refuses_flipped_chunk) {
  flip_chunk_one();
  void *inst =
      start_with((const char *[]){kv("path", store), "snapshot=g0", NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  ck_assert_int_eq(plugin->prefetch(inst, 0, SIZE), by_chunk ? -1 : 0);
  if (by_chunk) ck_assert_int_eq(fakehost_last_errno(), EIO);
  uint8_t *buf = aligned_alloc(K4, CHUNK);
  int bad = 0;
  for (uint64_t off = 0; off < SIZE; off += CHUNK) {
    fakehost_clear_error();
    if (plugin->read(inst, buf, CHUNK, off, 0) == 0) {
      ck_assert(!memcmp(buf, want + off, CHUNK));
      continue;
    }
    bad++;
    ck_assert_int_eq(fakehost_last_errno(), EIO);
  }
  ck_assert_int_ge(bad, 1);
  ck_assert_int_le(bad, 2);
  free(buf);
  plugin->destroy(inst);
}
END_TEST

START_TEST(wrong_key) {
  char keyfile[160], args[512];
  snprintf(keyfile, sizeof keyfile, "%s/key", dir);
  int fd = open(keyfile, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_eq(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
  close(fd);
  snprintf(store, sizeof store, "%s/enc", dir);
  snprintf(args, sizeof args, "g0 %s --key-file %s", image, keyfile);
  snap(args);
  void *inst = start_with((const char *[]){kv("path", store), "snapshot=g0",
                                           kv("key_file", keyfile), NULL});
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  check_reads(inst, K4);
  plugin->destroy(inst);
  setenv("UFK_TEST_KEY",
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
  expect_create_error((const char *[]){kv("path", store), "snapshot=g0",
                                       "key_env=UFK_TEST_KEY", NULL},
                      "the key given is not the store's key");
  expect_create_error((const char *[]){kv("path", store), "snapshot=g0", NULL},
                      "the store is encrypted; give its key");
}
END_TEST

/* Changes byte `at` of the object(s) matching glob `obj` of the store and
 * makes its SHA-256 trailer right again: what someone able to write the
 * store but without its key can do. */
static void forge(const char *obj, long at) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "for f in %s/%s; do python3 -c \"import hashlib, sys\n"
           "b = bytearray(open(sys.argv[1], 'rb').read()); b[%ld] ^= 1\n"
           "b[-32:] = hashlib.sha256(bytes(b[:-32])).digest()\n"
           "open(sys.argv[1], 'wb').write(b)\" $f; done",
           store, obj, at);
  ck_assert_int_eq(system(cmd), 0);
}

static void encrypted_store(char *keyfile, size_t len) {
  char args[512];
  snprintf(keyfile, len, "%s/key", dir);
  int fd = open(keyfile, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_eq(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
  close(fd);
  snprintf(store, sizeof store, "%s/enc", dir);
  snprintf(args, sizeof args, "g0 %s --key-file %s", image, keyfile);
  snap(args);
}

/* A manifest whose chunk 1 names another id, or an index whose entry 0 is
 * moved, each with its checksum right: refused by the MAC, naming the
 * object, before a chunk is read. */
START_TEST(forged_metadata_refused) {
  char keyfile[160];
  encrypted_store(keyfile, sizeof keyfile);
  const char *settings[] = {kv("path", store), "snapshot=g0",
                            kv("key_file", keyfile), NULL};
  /* chunk 1's id: header 48, one pack id 32, chunk 0's reference 36,
   * chunk 1's pack 4 */
  forge("snapshots/g0", 48 + 32 + 36 + 4);
  expect_create_error(settings, "snapshots/g0: byte ");
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(),
                               "(MAC): not the HMAC-SHA-256 of the object "
                               "under the store's key"));
  forge("snapshots/g0", 48 + 32 + 36 + 4); /* back as it was */
  void *inst = start_with(settings);
  ck_assert_msg(inst != NULL, "%s", fakehost_last_error());
  plugin->destroy(inst);
  forge("packs/*.idx", 64 + 32); /* entry 0's offset */
  expect_create_error(settings, ".idx: byte ");
  ck_assert_ptr_nonnull(strstr(fakehost_last_error(), "(MAC): not the"));
}
END_TEST

static void by_chunk_on(void) {
  by_chunk = 1;
}

int main(void) {
  Suite *s = suite_create("store-plugin");
  TCase *tc = tcase_create("plugin");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, local_reads);
  tcase_add_test(tc, nested_reads);
  tcase_add_test(tc, settings_refused);
  tcase_add_test(tc, flipped_bit);
  tcase_add_test(tc, wrong_key);
  tcase_add_test(tc, checked_chunks_kept);
  tcase_add_test(tc, forged_metadata_refused);
  tcase_add_test(tc, prefetch_holds_chunks);
  tcase_add_test(tc, prefetch_refuses_flipped_chunk);
  tcase_add_test(tc, prefetch_bounded_by_chunk_cache);
  tcase_add_test(tc, read_waits_for_prefetch);
  suite_add_tcase(s, tc);
  /* The same reads, checks and prefetches from a store decoded by chunk. */
  tc = tcase_create("decode_by_chunk");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, by_chunk_on, NULL);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, local_reads);
  tcase_add_test(tc, flipped_bit);
  tcase_add_test(tc, checked_chunks_kept);
  tcase_add_test(tc, prefetch_holds_chunks);
  tcase_add_test(tc, prefetch_refuses_flipped_chunk);
  tcase_add_test(tc, read_waits_for_prefetch);
  suite_add_tcase(s, tc);
  return ufk_check_run(s);
}

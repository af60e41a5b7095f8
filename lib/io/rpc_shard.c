/* Tap shards (.rpc): 64-byte header, then one zstd frame of the values (float32 or
 * float16, row-major). Every field is checked against the file before anything is
 * allocated or decompressed; the values must hash to the header's checksum. */
#include "repeval/shard.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "repeval/atomic.h"
#include "repeval/dtype.h"

_Static_assert(sizeof(re_rpc_header) == 64, "the shard header is 64 bytes");

re_status re_rpc_read_header(FILE *f, int64_t size, const char *name, re_rpc_header *h) {
  if (size < (int64_t)sizeof *h || fread(h, sizeof *h, 1, f) != 1)
    return re_err(RE_EFORMAT, "%s: %lld bytes, shorter than the 64-byte shard header", name, (long long)size);
  if (memcmp(h->magic, RE_RPC_MAGIC, 8))
    return re_err(RE_EFORMAT, "%s: not a repeval shard: the magic bytes at offset 0 are not %s", name, RE_RPC_MAGIC);
  if (h->dtype > 1)
    return re_err(RE_EFORMAT, "%s: dtype code %u at offset 8, expected 0 (float32) or 1 (float16)", name,
                  (unsigned)h->dtype);
  if (h->rows < 1 || h->dim < 1 || h->rows > (INT64_MAX / 4) / h->dim)
    return re_err(RE_EFORMAT, "%s: shape %lld x %lld at offset 16 is not a positive size", name,
                  (long long)h->rows, (long long)h->dim);
  if (h->zbytes < 1 || h->zbytes != size - (int64_t)sizeof *h)
    return re_err(RE_EFORMAT, "%s: the header (offset 48) declares %lld compressed bytes, the file holds %lld after "
                              "the header",
                  name, (long long)h->zbytes, (long long)(size - (int64_t)sizeof *h));
  return RE_OK;
}

re_status re_rpc_read_values(FILE *f, const re_rpc_header *h, const char *name, float *out) {
  int64_t n = h->rows * h->dim, raw = n * (h->dtype ? 2 : 4);
  void *z = NULL;
  uint16_t *half = NULL;
  re_status st = RE_OK;
  RE_CHECK(re_malloc(h->zbytes, 1, &z));
  if (fread(z, 1, (size_t)h->zbytes, f) != (size_t)h->zbytes)
    RE_CHECK(re_err(RE_EIO, "%s: short read of %lld compressed bytes", name, (long long)h->zbytes));
  if (h->dtype)
    RE_CHECK(re_malloc(n, sizeof(uint16_t), &half));
  void *dst = h->dtype ? (void *)half : (void *)out;
  unsigned long long declared = ZSTD_getFrameContentSize(z, (size_t)h->zbytes);
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != (unsigned long long)raw)
    RE_CHECK(re_err(RE_EFORMAT, "%s: the zstd frame holds %llu bytes, the header's %lld x %lld %s need %lld", name,
                    declared, (long long)h->rows, (long long)h->dim, h->dtype ? "float16" : "float32",
                    (long long)raw));
  size_t got = ZSTD_decompress(dst, (size_t)raw, z, (size_t)h->zbytes);
  if (ZSTD_isError(got))
    RE_CHECK(re_err(RE_EFORMAT, "%s: zstd payload at offset 64: %s", name, ZSTD_getErrorName(got)));
  if (got != (size_t)raw)
    RE_CHECK(re_err(RE_EFORMAT, "%s: the zstd payload holds %zu bytes, the header's shape needs %lld", name, got,
                    (long long)raw));
  if (re_fnv1a64(RE_FNV1A64_INIT, dst, (size_t)raw) != h->sum)
    RE_CHECK(re_err(RE_EFORMAT, "%s: the values do not match the header's checksum (offset 40)", name));
  if (h->dtype)
    for (int64_t e = 0; e < n; e++)
      out[e] = re_f16_to_f32(half[e]);
done:
  free(z);
  free(half);
  return st;
}

re_status re_rpc_read(const char *path, uint64_t key, int64_t rows, int64_t dim, int f16, float *out) {
  FILE *f;
  RE_TRY(re_fopen_regular(path, &f));
  struct stat sb;
  re_rpc_header h;
  re_status st = RE_OK;
  if (fstat(fileno(f), &sb) != 0)
    RE_CHECK(re_err(RE_EIO, "%s: cannot stat", path));
  RE_CHECK(re_rpc_read_header(f, (int64_t)sb.st_size, path, &h));
  if (h.rows != rows || h.dim != dim || (int)h.dtype != f16)
    RE_CHECK(re_err(RE_ESHAPE, "%s: holds %lld x %lld %s, expected %lld x %lld %s", path, (long long)h.rows,
                    (long long)h.dim, h.dtype ? "float16" : "float32", (long long)rows, (long long)dim,
                    f16 ? "float16" : "float32"));
  if (key && h.key != key)
    RE_CHECK(re_err(RE_EFORMAT, "%s: the header's key %016llx (offset 32) is not the expected %016llx", path,
                    (unsigned long long)h.key, (unsigned long long)key));
  RE_CHECK(re_rpc_read_values(f, &h, path, out));
  if (fgetc(f) != EOF)
    RE_CHECK(re_err(RE_EFORMAT, "%s: bytes after the payload", path));
done:
  fclose(f);
  return st;
}

re_status re_rpc_write(const char *path, uint64_t key, int64_t rows, int64_t dim, int f16, const float *data) {
  int64_t n = rows * dim, raw = n * (f16 ? 2 : 4);
  uint16_t *half = NULL;
  void *z = NULL;
  re_status st = RE_OK;
  size_t cap = ZSTD_compressBound((size_t)raw);
  re_atomic at;
  memset(&at, 0, sizeof at);
  RE_CHECK(re_malloc((int64_t)cap, 1, &z));
  const void *src = data;
  if (f16) {
    RE_CHECK(re_malloc(n > 0 ? n : 1, sizeof(uint16_t), &half));
    for (int64_t e = 0; e < n; e++)
      half[e] = re_f32_to_f16(data[e]);
    src = half;
  }
  size_t zb = ZSTD_compress(z, cap, src, (size_t)raw, 3);
  if (ZSTD_isError(zb))
    RE_CHECK(re_err(RE_EIO, "%s: zstd: %s", path, ZSTD_getErrorName(zb)));
  re_rpc_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, RE_RPC_MAGIC, 8);
  h.dtype = (uint32_t)(f16 != 0);
  h.rows = rows;
  h.dim = dim;
  h.key = key;
  h.sum = re_fnv1a64(RE_FNV1A64_INIT, src, (size_t)raw);
  h.zbytes = (int64_t)zb;
  RE_CHECK(re_atomic_open(path, &at));
  at.no_sync = 1; /* a cache entry: its checksum rejects what a power loss may have torn */
  RE_CHECK(re_atomic_write(&at, &h, sizeof h));
  RE_CHECK(re_atomic_write(&at, z, h.zbytes));
  RE_CHECK(re_atomic_commit(&at));
done:
  if (st != RE_OK)
    re_atomic_abort(&at);
  free(z);
  free(half);
  return st;
}

/* repeval's tap shards (.rpc): a block of rows x dim activations, float32 or float16,
 * as one zstd frame behind a 64-byte header. The embedding cache of `repeval run` is
 * made of them, and activation exports may be (docs/formats.md). */
#ifndef REPEVAL_SHARD_H
#define REPEVAL_SHARD_H

#include <stdio.h>

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_RPC_MAGIC "RPVCACH1"

typedef struct re_rpc_header {
  char magic[8];   /* RE_RPC_MAGIC */
  uint32_t dtype;  /* 0 float32, 1 float16 */
  uint32_t reserved;
  int64_t rows, dim;
  uint64_t key;    /* the writer's identity of the contents (the cache's key); 0: none */
  uint64_t sum;    /* FNV-1a 64 of the uncompressed values */
  int64_t zbytes;  /* compressed payload size: the rest of the file */
  uint64_t reserved2;
} re_rpc_header; /* 64 bytes, little-endian hosts */

/* Read and check the header of shard file f (`size` bytes in all, `name` for
 * messages): magic, dtype, positive rows and dim, payload filling the file. */
re_status re_rpc_read_header(FILE *f, int64_t size, const char *name, re_rpc_header *h);
/* Decode the payload that follows the header into out (rows x dim float32, row-major),
 * checking its size and checksum; f is positioned after the header. */
re_status re_rpc_read_values(FILE *f, const re_rpc_header *h, const char *name, float *out);
/* Open `path`, read the header and the values (out: rows x dim) in one go; the header
 * must declare `rows`, `dim`, `f16` (0/1) and, when key != 0, that key. */
re_status re_rpc_read(const char *path, uint64_t key, int64_t rows, int64_t dim, int f16, float *out);
/* Write data (rows x dim float32) as a shard at `path` atomically, as float16 when f16. */
re_status re_rpc_write(const char *path, uint64_t key, int64_t rows, int64_t dim, int f16, const float *data);

#ifdef __cplusplus
}
#endif
#endif

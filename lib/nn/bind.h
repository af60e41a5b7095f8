/* Private: bind a module tree to a checkpoint (see bind.c; transformer parts in
 * bind_transformer.c). */
#ifndef REPEVAL_NN_BIND_H
#define REPEVAL_NN_BIND_H

#include "module.h"

/* Check and load every parameter of the tree rooted at `root` for per-sample input
 * shape `in`; on success *max_numel is the largest per-sample activation and
 * *max_work the largest kernel workspace (floats) for batches of max_batch. */
re_status re_mod_bind(re_mod *root, re_shape in, const re_ckpt *ck, int64_t max_batch, int64_t *max_numel,
                      int64_t *max_work);

/* ---- shared by the binders ---- */

typedef struct re_bind_ctx {
  const re_ckpt *ck;
  const char *prefix; /* prepended to every tensor name ("" for none) */
  unsigned char *used;
  char report[1900];
  size_t len;
  int problems;
  int64_t max_numel, max_work, max_batch;
  int64_t block_q, block_k; /* attention blocks */
} re_bind_ctx;

/* Record one problem (listed together at the end). */
void re_bind_note(re_bind_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fetch tensor <prefix><module>.<suffix> ("=<name>": <prefix><name>) with nd dims; dims[k] < 0
 * are inferred. Returns 1 when found with a matching shape (then *dst, if not NULL, holds a
 * float32 copy), 0 otherwise (noted when required). */
int re_bind_param(re_bind_ctx *c, const re_mod *m, const char *suffix, int nd, int64_t *dims, int required,
                  float **dst);
/* Mark <prefix><module>.<suffix> as used if the checkpoint has it (buffers such as causal masks). */
void re_bind_skip(re_bind_ctx *c, const re_mod *m, const char *suffix);
/* An RE_ESHAPE error naming the module. */
re_status re_bind_shape_error(const re_mod *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bind one module (any type) for per-sample input shape `in`. */
re_status re_bind_module(re_bind_ctx *c, re_mod *m, re_shape in);
/* Keep the largest workspace (floats). */
void re_bind_work(re_bind_ctx *c, int64_t floats);

/* Transformer parts (bind_transformer.c). */
re_status re_bind_transformer(re_bind_ctx *c, re_mod *m, re_shape in);

#endif

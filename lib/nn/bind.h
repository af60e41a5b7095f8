/* Private: bind a module tree to a checkpoint (see bind.c). */
#ifndef REPEVAL_NN_BIND_H
#define REPEVAL_NN_BIND_H

#include "module.h"

/* Check and load every parameter of the tree rooted at `root` for per-sample input
 * shape `in`; on success *max_numel is the largest per-sample activation and
 * *max_work the largest kernel workspace (floats) for batches of max_batch. */
re_status re_mod_bind(re_mod *root, re_shape in, const re_ckpt *ck, int64_t max_batch, int64_t *max_numel,
                      int64_t *max_work);

#endif

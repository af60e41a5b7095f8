/* Private: the PyTorch (torch.save zip) checkpoint backend, with an in-memory
 * entry point for fuzzing. */
#ifndef REPEVAL_TORCH_CKPT_H
#define REPEVAL_TORCH_CKPT_H

#include "ckpt_internal.h"

/* Parse a torch.save archive held in buf[0, len) (the whole file) into c; stored
 * storages point into buf, which must outlive c. */
re_status re_torch_parse(re_ckpt *c, const uint8_t *buf, int64_t len, const re_ckpt_options *opt);

#endif
